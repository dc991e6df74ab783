"""How the command line shows batches: JSON Lines, JSON, CSV or a terminal table,
a watch's events as JSON Lines, and progress lines on a terminal's stderr.

Every writer streams: a batch is written as soon as it arrives, and the
caller flushes after each page. The table sizes its columns from the
terminal's width once, before the first row, so rows need not wait.
JSON stays exact whatever the numbers, and writes every character unsafe on a
terminal as a `\\uXXXX` escape (the same value, spelled safely); text meant for a
terminal (the table, csv on a terminal) has its control characters shown as escapes.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import shutil
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Final, Protocol, TextIO

import orjson

from .. import BatchEvent
from .._converter import unstructure_batch
from .._models import AnyBatch
from ._terminal import UNSAFE, clip, for_terminal
from ._view import OPENAI, BatchView, view_of

FORMATS: Final = ("jsonl", "json", "csv", "table")
SOURCE: Final = "source"
"""The column, and the JSON key beside a batch's own, naming the project a batch came from."""
_WIDTHS: Final = {
    "id": 30, "status": 11, "created": 17, "ended": 17, "expires": 17, "counts": 29,
    "endpoint": 20,
}  # fmt: skip
"""The width each column wants (24 for others; a kind's view may want others): `counts`
holds the largest batch OpenAI takes whole (50,000 requests), as many failed included."""
_GIVES_WAY_LAST: Final = frozenset({"counts"})
"""Cuttable columns that keep their width while another cuttable column can give way."""
_KEEP_WHOLE: Final = frozenset(
    {"source", "id", "status", "created", "created_at", "ended", "expires"}
)
"""Columns never cut short: on a narrow terminal the rightmost other columns are dropped,
and a longer value (an unusual id, a time shown as a number) widens its row instead."""
_DROPPED_FIRST: Final = ("expires", "ended", "created_at", "created")
"""Columns kept whole that a row too wide drops, least important first, once no cuttable
column can give way; ids, statuses and sources are never dropped."""
_MIN_WIDTH: Final = 8
_REDRAW_EVERY: Final = 0.2
"""Seconds between redraws of the progress line: a few a second, however fast rows come."""


class Writer(Protocol):
    """Writes batches in one format; `close()` ends the document."""

    def write(self, batch: AnyBatch, source: str | None = None) -> None:
        """Write `batch`, saying it came from `source` when given (several projects)."""

    def close(self) -> None: ...


def make_writer(
    kind: str,
    out: TextIO,
    fields: Sequence[str] | None,
    *,
    width: int | None = None,
    terminal: bool | None = None,
    view: BatchView[Any] = OPENAI,
    sources: Sequence[str] = (),
) -> Writer:
    """A writer for format `kind`; `fields` picks the columns of csv and table (by default
    `view`'s, after a `source` column when batches come from several `sources`).

    csv is neutralised for a terminal when `terminal` is true (by default: when
    `out` is one) and exact otherwise; the table always is, JSON never needs it.
    """
    if kind == "jsonl":
        return _JsonLines(out)
    if kind == "json":
        return _JsonArray(out)
    first = (SOURCE,) if sources else ()
    if kind == "csv":
        return _Csv(
            out,
            fields or (*first, *view.csv_fields),
            terminal=out.isatty() if terminal is None else terminal,
        )
    return _Table(
        out,
        fields or (*first, *view.table_fields),
        width or shutil.get_terminal_size().columns,
        {**_WIDTHS, **view.widths, SOURCE: max(map(len, [SOURCE, *sources]))},
        view.before_times,
    )


def document(batch: AnyBatch, source: str | None = None) -> dict[str, Any]:
    """The batch as JSON writes it, exactly; with a `source`, that key first, beside it."""
    fields = unstructure_batch(batch)
    return fields if source is None else {SOURCE: source, **fields}


def cells(batch: AnyBatch, fields: Sequence[str], source: str | None) -> list[str]:
    """The text of each of `fields` of `batch`, as its kind's view computes them."""
    row = unstructure_batch(batch)
    view = view_of(batch)
    return [_cell(source if field == SOURCE else view.value(batch, row, field)) for field in fields]


class _JsonLines:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def write(self, batch: AnyBatch, source: str | None = None) -> None:
        self._out.write(_json(document(batch, source)) + "\n")

    def close(self) -> None:
        """JSON Lines needs no closing."""


class _JsonArray:
    """A JSON array written element by element, valid once closed."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._separator = "[\n"

    def write(self, batch: AnyBatch, source: str | None = None) -> None:
        self._out.write(self._separator + _json(document(batch, source)))
        self._separator = ",\n"

    def close(self) -> None:
        self._out.write("[]\n" if self._separator == "[\n" else "\n]\n")


class _Csv:
    def __init__(self, out: TextIO, fields: Sequence[str], *, terminal: bool) -> None:
        self._fields = fields
        # A file or pipe gets the data exactly; only a person's screen needs protecting.
        self._show: Callable[[str], str] = for_terminal if terminal else str
        self._writer = csv.writer(out, lineterminator="\n")
        # Python's csv quotes only the line terminator's characters, so a bare
        # "\r" in a cell would read back as a line break; such rows quote all.
        self._quoting_writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        self._writer.writerow(fields)

    def write(self, batch: AnyBatch, source: str | None = None) -> None:
        shown = [self._show(cell) for cell in cells(batch, self._fields, source)]
        writer = self._quoting_writer if any("\r" in cell for cell in shown) else self._writer
        writer.writerow(shown)

    def close(self) -> None:
        """CSV needs no closing."""


class _Table:
    """Aligned columns that fit the terminal; the widest free-text column gives way."""

    def __init__(
        self,
        out: TextIO,
        fields: Sequence[str],
        width: int,
        wanted: Mapping[str, int],
        before_times: Collection[str] = frozenset(),
    ) -> None:
        self._out = out
        self._fields, self._widths = _fit(list(fields), width, wanted, before_times)
        # A column kept whole is clipped only when even ids do not fit (a very narrow terminal).
        self._whole = [
            field in _KEEP_WHOLE and width >= wanted.get(field, 24)
            for field, width in zip(self._fields, self._widths, strict=True)
        ]
        self._line([field.upper() for field in self._fields])

    def write(self, batch: AnyBatch, source: str | None = None) -> None:
        # Neutralised before clipping, so a cell's escapes count towards its width.
        self._line([for_terminal(cell) for cell in cells(batch, self._fields, source)])

    def close(self) -> None:
        """A table needs no closing."""

    def _line(self, cells: list[str]) -> None:
        parts = [
            cell.ljust(width) if whole else _clip(cell, width)
            for whole, cell, width in zip(self._whole, cells, self._widths, strict=True)
        ]
        self._out.write("  ".join(parts).rstrip() + "\n")


class Progress:
    """A one-line tally on a terminal's stderr: batches, pages, rate; cleared at the end.

    stdout is often the same terminal: `hide()` clears the line before rows are written
    there, so that no row lands after the tally, and the next count draws it again (a
    merge's, at most every `_REDRAW_EVERY` seconds, as it counts each batch).
    """

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._started = time.monotonic()
        self._drawn_at = -math.inf
        self._shown = False
        self.batches = 0
        self.pages = 0

    def page(self, batches: int) -> None:
        """Count a page of `batches`, drawn each time: a page is one request, seldom enough."""
        self.pages += 1
        self.batches += batches
        self._draw(time.monotonic())

    def count(self, batches: int) -> None:
        """Count `batches` more without a page of their own (a merge of several listings),
        drawn a few times a second at most: a merge counts every batch."""
        self.batches += batches
        now = time.monotonic()
        if now - self._drawn_at >= _REDRAW_EVERY:
            self._draw(now)

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        rate = self.batches / max(now - self._started, 1e-9)
        pages = f", {self.pages:,} {_plural(self.pages, 'page')}" if self.pages else ""
        self._err.write(
            f"\r\x1b[K{self.batches:,} {_plural(self.batches, 'batch')}{pages},"
            f" {rate:,.0f} batches/s"
        )
        self._err.flush()
        self._shown = True

    def hide(self) -> None:
        """Clear the line, if shown, before rows are written to the same terminal."""
        if self._shown:
            self._shown = False
            self._err.write("\r\x1b[K")
            self._err.flush()

    def close(self) -> None:
        """Clear the line; quietly, as it runs however the listing ends, failures included."""
        with contextlib.suppress(OSError, ValueError, UnicodeEncodeError):
            self._err.write("\r\x1b[K")
            self._err.flush()


def _plural(count: int, noun: str) -> str:
    """`noun` for one, its plural for any other count."""
    if count == 1:
        return noun
    return noun + ("es" if noun.endswith("ch") else "s")


class WaitProgress:
    """A one-line tally on a terminal's stderr: how many of the batches have finished.

    Redrawn as polls report, cut to the terminal's width so it never wraps, and
    cleared at the end. Progress is a courtesy: a stderr that fails is left alone.
    """

    def __init__(self, err: TextIO, total: int) -> None:
        self._err = err
        self._total = total
        self._shown: str | None = None

    def show(self, finished: int, processed: int = 0, requests: int = 0) -> None:
        """Show how many batches finished and, when known, how many of their requests
        were processed (completed or failed), so that each poll shows movement."""
        text = f"waiting: {finished:,} of {self._total:,} batches finished"
        if requests:
            text += f"; {processed:,} of {requests:,} requests processed"
        if text == self._shown:
            return
        self._shown = text
        columns = shutil.get_terminal_size().columns
        self._write(f"\r\x1b[K{clip(text, max(columns - 1, 1))}")

    def close(self) -> None:
        if self._shown is not None:
            self._write("\r\x1b[K")

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError, UnicodeEncodeError):
            self._err.write(text)
            self._err.flush()


def event_json(event: BatchEvent[Any]) -> str:
    """One watch event as a JSON object: its kind, the batch (as `list` writes it), the
    fields that changed, and whether the batch finished with it."""
    return _json(
        {
            "kind": event.kind,
            "batch": unstructure_batch(event.batch),
            "changes": list(event.changes),
            "finished": event.finished,
        }
    )


def _fit(
    fields: list[str],
    total: int,
    wanted: Mapping[str, int],
    before_times: Collection[str] = frozenset(),
) -> tuple[list[str], list[int]]:
    """Columns and widths that fit `total` characters with 2-space gaps.

    The widest cuttable column shrinks first, down to 8 characters, counts only once the
    others are down to 8 (and `before_times` only once no time column is left to drop); if
    the row still does not fit, the rightmost cuttable column is dropped, then the times,
    least important first (`_DROPPED_FIRST`), then the last cuttable column. Ids, statuses
    and sources are never cut short while another column can go; only on a terminal too
    narrow for them alone are they clipped, so that no row is wider than `total`.
    """
    while True:
        widths = [wanted.get(field, 24) for field in fields]
        budget = total - 2 * (len(fields) - 1)
        cuttable = [i for i, field in enumerate(fields) if field not in _KEEP_WHOLE]
        last = [i for i in cuttable if fields[i] in _GIVES_WAY_LAST]
        _shrink(widths, [i for i in cuttable if i not in last], budget)
        times = [field for field in _DROPPED_FIRST if field in fields]
        if sum(widths) > budget and times and any(fields[i] in before_times for i in last):
            fields = [field for field in fields if field != times[0]]
            continue
        _shrink(widths, cuttable, budget)
        if sum(widths) <= budget:
            return fields, widths
        if len(cuttable) > 1:
            fields = fields[: cuttable[-1]] + fields[cuttable[-1] + 1 :]
        elif times:
            fields = [field for field in fields if field != times[0]]
        elif cuttable and len(fields) > 1:
            del fields[cuttable[0]]
        else:  # too narrow for ids and statuses alone: they are clipped
            widths = [wanted.get(field, 24) for field in fields]
            while sum(widths) > max(budget, len(fields)) and max(widths) > 1:
                widths[widths.index(max(widths))] -= 1
            return fields, widths


def _shrink(widths: list[int], columns: list[int], budget: int) -> None:
    """Narrow the widest of `columns`, one character at a time, down to 8, until `widths`
    fit `budget`."""
    while sum(widths) > budget:
        shrinkable = [i for i in columns if widths[i] > _MIN_WIDTH]
        if not shrinkable:
            return
        widths[max(shrinkable, key=widths.__getitem__)] -= 1


def _clip(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return _json(value)
    return str(value)


def _json(value: object) -> str:
    """Compact JSON of `value`, exact whatever the size of its integers, with every
    character unsafe on a terminal written as a `\\uXXXX` escape: the same JSON value,
    safe to show and always encodable (a lone surrogate included)."""
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an int beyond 64 bits (or a lone surrogate)
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Both encoders escape C0 controls but write C1 controls, bidi controls and line
    # separators raw. An ASCII string says so in O(1), and DEL is found by memchr, so most
    # batches skip the regex.
    if text.isascii() and "\x7f" not in text:
        return text
    return UNSAFE.sub(_json_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"
