"""Making server text safe to show on a terminal.

Ids, models, metadata and error messages come from the server. Shown raw,
an ESC or C1 byte could move the cursor, clear the screen or retitle the
window, and a bidi override could make text read other than it is (Trojan
Source, CVE-2021-42574). `for_terminal` turns each such character into a
visible escape, in linear time, keeping everything else as it is. `width`,
`clip` and `pad` measure such text in terminal columns, so a table of it stays aligned.
"""

from __future__ import annotations

import unicodedata
from typing import Final

_NAMED: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(code: int) -> str:
    char = chr(code)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


_UNSAFE: Final = (
    *range(0x20),  # C0 controls: ESC, CR, BEL, backspace, ...
    0x7F,  # DEL
    *range(0x80, 0xA0),  # C1 controls: CSI (0x9b) starts an escape sequence by itself
    *range(0x202A, 0x202F),  # bidi embeddings and overrides: LRE RLE PDF LRO RLO
    *range(0x2066, 0x206A),  # bidi isolates: LRI RLI FSI PDI
    # Lone surrogates cannot be encoded for output at all; showing them
    # escaped keeps a stray one from ending the listing with an error.
    *range(0xD800, 0xE000),
)
_TABLE: Final = {code: _escape(code) for code in _UNSAFE}
_ZERO_WIDTH: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff")
"""Format characters that take no column (zero-width space, joiners, byte order mark)."""


def for_terminal(text: str) -> str:
    """`text` with control characters, bidi controls and lone surrogates shown as escapes."""
    return text.translate(_TABLE)


def width(text: str) -> int:
    """The columns `text` takes on a terminal: wide East Asian characters take two,
    combining marks none. Meant for neutralised text (no controls left)."""
    return sum(_char_width(char) for char in text)


def clip(text: str, columns: int, *, ellipsis: str = "…") -> str:
    """`text` cut to at most `columns` terminal columns, ending in `ellipsis` when cut."""
    if width(text) <= columns:
        return text
    room = columns - width(ellipsis)
    if room < 0:
        return ""
    kept, used = [], 0
    for char in text:
        used += _char_width(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept) + ellipsis


def pad(text: str, columns: int, *, ellipsis: str = "…") -> str:
    """`text` clipped to `columns` and padded with spaces to exactly that many."""
    clipped = clip(text, columns, ellipsis=ellipsis)
    return clipped + " " * (columns - width(clipped))


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or char in _ZERO_WIDTH:
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
