"""Making server text safe to show on a terminal.

Ids, models, metadata and error messages come from the server. Shown raw,
an ESC or C1 byte could move the cursor, clear the screen or retitle the
window, and a bidi override could make text read other than it is (Trojan
Source, CVE-2021-42574). `for_terminal` turns each such character into a
visible escape, in linear time, keeping everything else as it is.
"""

from __future__ import annotations

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


def for_terminal(text: str) -> str:
    """`text` with control characters, bidi controls and lone surrogates shown as escapes."""
    return text.translate(_TABLE)
