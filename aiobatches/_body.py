"""Reading response bodies within bounds, and JSON the way servers really send it.

A page may be at most 16 MiB after decompression and an error body is read
to 64 KiB, so a hostile server costs bounded memory; decoding honours a
declared charset and a byte-order mark, keeps integers of any size exact,
and summarises an error body in one linear pass.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, Final

import aiohttp
import orjson

MAX_PAGE_BYTES: Final = 16 * 1024 * 1024
MAX_ERROR_BYTES: Final = 64 * 1024
_SUMMARY_CHARS: Final = 200
_UTF8: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_BIG_INT: Final = re.compile(rb"\d{20}")
"""orjson turns integers beyond 64 bits (20 digits or more) into floats."""


class BodyError(ValueError):
    """A body that cannot be read as JSON text; the message says why."""


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the (decompressed) body, and whether more was left unread.

    Reading stops at the limit: the rest of an endless or inflating body is
    never held, and the connection is closed rather than drained.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        room = limit - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            response.close()
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def text_of(body: bytes, charset: str | None) -> bytes | str:
    """The body without a byte-order mark, decoded when it declares a charset other than UTF-8."""
    if charset is None or charset.lower() in _UTF8:
        return body.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode(charset).removeprefix("\ufeff")
    except LookupError:
        raise BodyError(f"it declares an unknown charset {charset!r}") from None
    except UnicodeDecodeError as error:
        raise BodyError(f"it is not valid {charset} ({error.reason})") from None


def loads(text: bytes | str) -> Any:
    """Decode JSON fast; raises `BodyError` for anything that is not JSON.

    orjson refuses some valid JSON (a lone surrogate escape such as `"\\ud800"`,
    which one batch's text can carry): the stdlib decoder gets a second look
    then, so that one odd string does not block a whole page.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        refused = error
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BodyError(f"it is not JSON ({refused})") from None


def dumps(value: object) -> bytes:
    """Encode JSON fast, exactly: the stdlib writes what orjson refuses (integers beyond
    64 bits, a lone surrogate), so a value read from a server can always be sent on."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def loads_exact(text: bytes | str) -> Any | None:
    """Decode again keeping integers beyond 64 bits exact, or None when there are none.

    Called only for a page that failed validation, so the common path pays
    nothing; the stdlib decoder is exact for any integer size.
    """
    raw = text.encode() if isinstance(text, str) else text
    if not _BIG_INT.search(raw):
        return None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None


def error_summary(body: bytes, charset: str | None) -> tuple[str, object]:
    """A one-line detail and the `body` to expose for an error response.

    A JSON body exposes its `error` object (or itself) and its message; any
    other body is shown as text with markup removed, cut to 200 characters.
    """
    try:
        text = text_of(body, charset)
    except BodyError:
        text = body
    plain = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
    try:
        decoded = loads(text)
    except BodyError:
        return _shorten(_strip_tags(plain)), (plain or None)
    if isinstance(decoded, dict):
        inner = decoded.get("error", decoded)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return _shorten(inner["message"]), inner
        return "", inner
    return "", decoded


def _strip_tags(text: str) -> str:
    """Remove `<...>` markup in one pass (a regex here is quadratic on a run of `<`)."""
    parts: list[str] = []
    start = 0
    while (opening := text.find("<", start)) >= 0:
        closing = text.find(">", opening)
        if closing < 0:  # no tag can close any more: the rest is text
            break
        parts.append(text[start:opening])
        parts.append(" ")
        start = closing + 1
    parts.append(text[start:])
    return "".join(parts)


def _shorten(text: str) -> str:
    """Whitespace folded, at most 200 characters (reading no more than it needs)."""
    head = text[: _SUMMARY_CHARS * 8]
    words = " ".join(head.split())
    if len(words) <= _SUMMARY_CHARS and len(head) == len(text):
        return words
    return words[:_SUMMARY_CHARS] + "..."


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
