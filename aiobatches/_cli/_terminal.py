"""Making server text safe to show on a terminal.

Ids, models, metadata and error messages come from the server. Shown raw,
an ESC or C1 byte could move the cursor, clear the screen or retitle the
window, a bidi override or mark could make text read other than it is (Trojan
Source, CVE-2021-42574), and a line separator could break a line to some readers.
`for_terminal` turns each such character into a visible escape, in linear time,
keeping everything else as it is; `UNSAFE` finds the same characters for JSON. `width`,
`clip` and `pad` measure such text in terminal columns, so a table of it stays aligned.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

_NAMED: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(code: int) -> str:
    char = chr(code)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")


_UNSAFE_RANGES: Final = (
    (0x00, 0x1F),  # C0 controls: ESC, CR, BEL, backspace, ...
    (0x7F, 0x9F),  # DEL, and C1 controls: CSI (0x9b) starts an escape sequence by itself
    (0x061C, 0x061C),  # the Arabic letter mark, a bidi mark
    (0x200E, 0x200F),  # bidi marks: LRM RLM
    (0x2028, 0x2029),  # line and paragraph separators: a line break to some readers
    (0x202A, 0x202E),  # bidi embeddings and overrides: LRE RLE PDF LRO RLO
    (0x2066, 0x2069),  # bidi isolates: LRI RLI FSI PDI
    # Lone surrogates cannot be encoded for output at all; showing them
    # escaped keeps a stray one from ending the listing with an error.
    (0xD800, 0xDFFF),
)
"""Every character that must not reach a terminal raw, as inclusive ranges of code points:
the one list both `for_terminal` and `UNSAFE` are made from."""
_TABLE: Final = {
    code: _escape(code) for low, high in _UNSAFE_RANGES for code in range(low, high + 1)
}
UNSAFE: Final = re.compile(
    "[" + "".join(f"\\u{low:04x}-\\u{high:04x}" for low, high in _UNSAFE_RANGES) + "]"
)
"""Matches any one character `for_terminal` escapes, for writers that escape in their own
syntax (JSON's `\\uXXXX`)."""
_ZERO_WIDTH: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff")
"""Format characters that take no column (zero-width space, joiners, byte order mark)."""


def for_terminal(text: str) -> str:
    """`text` with control characters, bidi controls, line separators and lone surrogates
    shown as escapes."""
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
