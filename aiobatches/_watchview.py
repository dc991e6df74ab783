"""The terminal view of `aiobatches watch`: a table of batches redrawn in place.

`Board` keeps what the watch has seen; `render` lays it out for one terminal size
(unfinished batches first with their progress, then the latest finished ones);
`Screen` owns the terminal while the view shows and gives it back however the
watch ends; `follow` feeds a watch's events through them, redrawing at most a few
times a second and whenever the terminal changes size.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Collection, Iterator, Sequence
from types import TracebackType
from typing import Final, Self, TextIO

from attrs import frozen

from ._awaiting import BatchEvent
from ._models import Batch
from ._output import human_time
from ._terminal import clip, for_terminal, pad, width

_GAP: Final = 0.2
"""Seconds between redraws at least: a cycle's events, however many, make a few frames."""
_IDLE: Final = 0.5
"""Seconds between looks at the terminal's size while nothing happens."""
_KEEP_FINISHED: Final = 500
"""Finished batches kept for showing (no screen is taller); the count covers them all."""
_SPACE: Final = "  "

# Select Graphic Rendition parameters; a style is one of these or "" for none.
BOLD: Final = "1"
DIM: Final = "2"
GREEN: Final = "32"
RED: Final = "31"
YELLOW: Final = "33"
CYAN: Final = "36"
_STATUS_STYLES: Final = {
    "completed": GREEN,
    "failed": RED,
    "expired": YELLOW,
    "cancelled": YELLOW,
    "cancelling": YELLOW,
    "in_progress": CYAN,
}

Segment = tuple[str, str]
"""Text and its style; the text is neutralised and measured."""
Line = list[Segment]


@frozen
class Glyphs:
    """The characters drawing a bar: Unicode blocks, or ASCII where the output cannot hold them."""

    done: str
    failed: str
    todo: str
    ellipsis: str
    rule: str
    dot: str

    @classmethod
    def for_encoding(cls, encoding: str | None) -> Glyphs:
        """Block glyphs if `encoding` holds them (UTF-8 does; None is a text buffer, which
        holds anything), else ASCII ones."""
        try:
            "█▒░…─·".encode(encoding or "utf-8")
        except (UnicodeEncodeError, LookupError):
            return cls("#", "x", ".", "~", "-", "|")
        return cls("█", "▒", "░", "…", "─", "·")


class Board:
    """What the watch has seen: every unfinished batch, the latest finished ones, a count of all.

    Only batches whose status is in `statuses` (all when empty) are kept; a batch
    that moves to another status leaves the board. However long the watch runs, the
    board holds its unfinished batches and at most `2 * _KEEP_FINISHED` finished
    ones: a finished batch is counted once, and held only while it is among the latest.
    """

    def __init__(self, statuses: Collection[str] = ()) -> None:
        self.statuses = frozenset(statuses)
        self.unfinished: dict[str, Batch] = {}
        self.finished: dict[str, Batch] = {}
        self.finished_count = 0
        """Finished batches shown (of a status in `statuses`), including those no longer held."""
        self.changed_at: float | None = None
        """Wall-clock time of the last event that changed the board."""
        self.note: str | None = None
        """The latest warning, shown at the bottom (a cycle that failed and will be retried)."""

    def see(self, event: BatchEvent) -> None:
        batch = event.batch
        held = self.unfinished.pop(batch.id, None) or self.finished.pop(batch.id, None)
        # What the board last saw of this batch: held, or else (a finished one dropped from
        # the latest) the watch's previous state of it. Its state, not the event's
        # transition, says whether it was counted.
        before = held if held is not None else event.previous
        if before is not None and before.is_finished and self._shows(before):
            self.finished_count -= 1
        self.changed_at = time.time()
        if not self._shows(batch):
            return
        if not batch.is_finished:
            self.unfinished[batch.id] = batch
            return
        self.finished_count += 1
        self.finished[batch.id] = batch
        if len(self.finished) > 2 * _KEEP_FINISHED:
            latest = heapq.nlargest(_KEEP_FINISHED, self.finished.values(), key=_finish_order)
            self.finished = {kept.id: kept for kept in latest}

    def _shows(self, batch: Batch) -> bool:
        return not self.statuses or batch.status in self.statuses

    def latest_unfinished(self) -> list[Batch]:
        """Unfinished batches, newest first (as the API lists them)."""
        return sorted(self.unfinished.values(), key=_creation_order, reverse=True)

    def latest_finished(self, count: int) -> list[Batch]:
        """The `count` batches that finished last, latest first."""
        return heapq.nlargest(max(count, 0), self.finished.values(), key=_finish_order)


def _creation_order(batch: Batch) -> tuple[int, str]:
    return batch.created_at, batch.id


def _finish_order(batch: Batch) -> tuple[int, int, str]:
    ends = (batch.completed_at, batch.failed_at, batch.expired_at, batch.cancelled_at)
    ended = max((end for end in ends if end is not None), default=batch.created_at)
    return ended, batch.created_at, batch.id


@frozen
class _Column:
    title: str
    minimum: int
    maximum: int


_COLUMNS: Final = {
    "id": _Column("ID", 8, 64),
    "status": _Column("STATUS", 6, 16),
    "progress": _Column("PROGRESS", 12, 36),
    "done": _Column("DONE/TOTAL", 10, 40),
    "failed": _Column("FAILED", 6, 24),
    "model": _Column("MODEL", 8, 28),
    "created": _Column("CREATED", 17, 24),
}
"""In order of importance: a narrow terminal drops columns from the end."""
_PERCENT: Final = 4


def render(
    board: Board,
    columns: int,
    rows: int,
    *,
    interval: float,
    glyphs: Glyphs,
) -> list[Line]:
    """The screen for `board` at this size: never wider than `columns`, never taller than `rows`."""
    columns, rows = max(columns, 1), max(rows, 1)
    header = f" {glyphs.dot} ".join(_header(board, interval))
    lines: list[Line] = [[(clip(header, columns, ellipsis=glyphs.ellipsis), BOLD)]]
    note = None if board.note is None else for_terminal(board.note)
    room = rows - 2 - (note is not None)
    unfinished = board.latest_unfinished()
    shown = unfinished if len(unfinished) <= room else unfinished[: max(room - 1, 0)]
    more = len(unfinished) - len(shown)
    left = room - len(shown) - (more > 0) - (not unfinished)
    finished = board.latest_finished(left - 1) if left >= 2 else []
    table = _Table(shown + finished, columns, glyphs)
    lines.append(table.titles())
    lines.extend(table.row(batch) for batch in shown)
    if more:
        lines.append([(f"{glyphs.ellipsis} and {more:,} more unfinished", DIM)])
    elif not unfinished:
        waiting = "no unfinished batches" if board.changed_at else f"listing{glyphs.ellipsis}"
        lines.append([(waiting, DIM)])
    if finished:
        title = f"{glyphs.rule * 2} latest finished "
        lines.append([(title + glyphs.rule * (columns - width(title)), DIM)])
        lines.extend(table.row(batch) for batch in finished)
    if note is not None:
        lines.append([(clip(note, columns, ellipsis=glyphs.ellipsis), YELLOW)])
    return [_fit_line(line, columns) for line in lines[:rows]]


def _header(board: Board, interval: float) -> list[str]:
    parts = [
        "aiobatches watch",
        f"{len(board.unfinished):,} unfinished",
        f"{board.finished_count:,} finished",
        f"every {interval:g}s",
    ]
    if board.statuses:
        parts.append("status " + ",".join(sorted(for_terminal(s) for s in board.statuses)))
    if board.changed_at is not None:
        parts.append("last change " + time.strftime("%H:%M:%S", time.localtime(board.changed_at)))
    return parts


def _fit_line(line: Line, columns: int) -> Line:
    """`line` cut at `columns`, a last guard behind each cell's own width."""
    fitted: Line = []
    used = 0
    for text, style in line:
        kept = text if used + width(text) <= columns else clip(text, columns - used, ellipsis="")
        fitted.append((kept, style))
        used += width(kept)
        if used >= columns:
            break
    return fitted


class _Table:
    """Columns sized for the rows at hand and the terminal's width."""

    def __init__(self, batches: Sequence[Batch], columns: int, glyphs: Glyphs) -> None:
        self._glyphs = glyphs
        cells = [_cells(batch) for batch in batches]
        wanted = {}
        for name, spec in _COLUMNS.items():
            longest = max((width(row[name]) for row in cells), default=0)
            wanted[name] = min(max(longest, width(spec.title), spec.minimum), spec.maximum)
        self.widths = _fit(wanted, columns)

    def titles(self) -> Line:
        cells = [pad(_COLUMNS[name].title, size) for name, size in self.widths.items()]
        return [(_SPACE.join(cells).rstrip(), BOLD)]

    def row(self, batch: Batch) -> Line:
        cells = _cells(batch)
        line: Line = []
        for name, size in self.widths.items():
            if line:
                line.append((_SPACE, ""))
            if name == "progress":
                line.extend(self._bar(batch, size))
            elif name == "status":
                line.append((pad(cells[name], size, ellipsis=self._glyphs.ellipsis), _style(batch)))
            else:
                line.append((pad(cells[name], size, ellipsis=self._glyphs.ellipsis), ""))
        while line and not line[-1][0].strip():
            line.pop()
        return line

    def _bar(self, batch: Batch, size: int) -> Line:
        """A bar of completed (and failed) requests out of the total, and the share processed."""
        bar = size - 1 - _PERCENT
        counts = batch.request_counts
        if counts is None or counts.total <= 0:
            return [(" " * size, "")]
        total = counts.total
        completed = min(max(counts.completed, 0), total)
        failed = min(max(counts.failed, 0), total - completed)
        done = completed * bar // total
        ended = (completed + failed) * bar // total
        if failed and ended == done and ended < bar:  # a failure always shows
            ended += 1
        percent = f"{(completed + failed) * 100 // total}%".rjust(_PERCENT)
        glyphs = self._glyphs
        return [
            (glyphs.done * done, GREEN),
            (glyphs.failed * (ended - done), RED),
            (glyphs.todo * (bar - ended), DIM),
            (" " + percent, ""),
        ]


def _fit(wanted: dict[str, int], columns: int) -> dict[str, int]:
    """Widths for the most important columns that fit, the id column clipped last of all."""
    names = list(wanted)
    while True:
        total = sum(wanted[name] for name in names) + len(_SPACE) * (len(names) - 1)
        if total <= columns or len(names) == 1:
            break
        names.pop()
    widths = {name: wanted[name] for name in names}
    spare = columns - sum(widths.values()) - len(_SPACE) * (len(widths) - 1)
    if "progress" in widths:  # the bar takes what is left, up to its maximum
        grow = max(min(spare, _COLUMNS["progress"].maximum - widths["progress"]), 0)
        widths["progress"] += grow
    elif spare < 0:  # even the id does not fit: clip it
        widths[names[0]] = max(widths[names[0]] + spare, 1)
    return widths


def _cells(batch: Batch) -> dict[str, str]:
    counts = batch.request_counts
    return {
        "id": for_terminal(batch.id),
        "status": for_terminal(str(batch.status)),
        "progress": "",
        "done": "" if counts is None else f"{counts.completed:,}/{counts.total:,}",
        "failed": "" if counts is None or not counts.failed else f"{counts.failed:,}",
        "model": for_terminal(batch.model or ""),
        "created": human_time(batch.created_at),
    }


def _style(batch: Batch) -> str:
    return _STATUS_STYLES.get(str(batch.status), "")


class Screen:
    """The terminal the view draws on, or a plain stream of frames when it is not one.

    On a terminal it switches to the alternate screen, hides the cursor and stops
    long lines from wrapping; leaving (however the watch ends) undoes all three.
    Elsewhere each frame is written whole, uncoloured, followed by a blank line.
    """

    def __init__(self, out: TextIO, *, live: bool, color: bool) -> None:
        self._out = out
        self.live = live
        self._color = color and live
        self.glyphs = Glyphs.for_encoding(getattr(out, "encoding", None))
        self._entered = False

    def size(self) -> tuple[int, int]:
        """Columns and rows now (a live terminal is asked each time, so a resize is seen)."""
        if self.live:
            with contextlib.suppress(OSError, ValueError):
                size = os.get_terminal_size(self._out.fileno())
                if size.columns > 0 and size.lines > 0:
                    return size.columns, size.lines
        size = shutil.get_terminal_size()
        return size.columns, size.lines

    def __enter__(self) -> Self:
        if self.live:
            # Alternate screen, cursor hidden, no automatic wrap.
            self._out.write("\x1b[?1049h\x1b[?25l\x1b[?7l")
            self._out.flush()
            self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.leave()

    def leave(self) -> None:
        """Give the terminal back as it was; idempotent, and quiet if it is gone."""
        if not self._entered:
            return
        self._entered = False
        with contextlib.suppress(OSError, ValueError):
            self._out.write("\x1b[0m\x1b[?7h\x1b[?25h\x1b[?1049l")
            self._out.flush()

    def draw(self, lines: Sequence[Line]) -> None:
        """Show one frame: in place on a terminal, appended elsewhere."""
        if not self.live:
            self._out.write("".join(_plain(line).rstrip() + "\n" for line in lines) + "\n")
            self._out.flush()
            return
        # Each line addressed, erased and written: nothing scrolls, nothing flickers. The
        # last one erases to the end of the screen first (what a longer frame left there);
        # a full screen leaves no row below to address. A terminal that knows synchronized
        # output (mode 2026) shows the frame at once.
        parts = ["\x1b[?2026h"]
        for row, line in enumerate(lines, start=1):
            erase = "\x1b[J" if row == len(lines) else "\x1b[2K"
            parts.append(f"\x1b[{row};1H{erase}{self._styled(line)}")
        parts.append("\x1b[?2026l")
        self._out.write("".join(parts))
        self._out.flush()

    def print(self, lines: Sequence[Line]) -> None:
        """Write a frame as ordinary lines (the final table, after leaving the screen)."""
        self._out.write("".join(self._styled(line) + "\n" for line in lines))
        self._out.flush()

    def _styled(self, line: Line) -> str:
        if not self._color:
            return _plain(line)
        return "".join(f"\x1b[{style}m{text}\x1b[0m" if style else text for text, style in line)


def _plain(line: Line) -> str:
    return "".join(text for text, _ in line)


class View:
    """A board on a screen: redrawn when it changed, at most every `_GAP` seconds."""

    def __init__(self, screen: Screen, board: Board, *, interval: float) -> None:
        self._screen = screen
        self.board = board
        self._interval = interval
        self.dirty = True
        self.drawn_at = -float("inf")
        self._size: tuple[int, int] | None = None

    def frame(self) -> list[Line]:
        """The board laid out for the terminal's size now (noted, so a resize is seen)."""
        columns, rows = self._size = self._screen.size()
        return render(
            self.board, columns, rows, interval=self._interval, glyphs=self._screen.glyphs
        )

    def draw(self) -> None:
        self._screen.draw(self.frame())
        self.dirty = False
        self.drawn_at = time.monotonic()

    def refresh(self) -> None:
        """Redraw if anything changed since the last frame, the terminal's size included."""
        if self.dirty or self._screen.size() != self._size:
            self.draw()

    def see(self, event: BatchEvent) -> None:
        self.board.see(event)
        self.dirty = True

    def warn(self, message: str) -> None:
        self.board.note = f"{time.strftime('%H:%M:%S')} warning: {message}"
        self.dirty = True


async def follow(events: AsyncIterator[BatchEvent], view: View) -> None:
    """Show every event on `view` until `events` ends, coalescing redraws.

    The next event is awaited in a task of its own, so that a redraw can happen
    while it is pending without cancelling the watch's request in flight.
    """
    loop = asyncio.get_running_loop()
    view.draw()
    pending: asyncio.Task[BatchEvent | None] | None = None
    try:
        while True:
            if pending is None:
                pending = loop.create_task(_next(events), name="aiobatches watch view")
            wait = max(view.drawn_at + _GAP - time.monotonic(), 0.0) if view.dirty else _IDLE
            done, _ = await asyncio.wait({pending}, timeout=wait)
            if not done:
                view.refresh()
                continue
            event = pending.result()
            pending = None
            if event is None:
                break
            view.see(event)
            if time.monotonic() - view.drawn_at >= _GAP:
                view.draw()
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})
            if not pending.cancelled():
                pending.exception()  # retrieved: the error that ends the view is another one
    view.draw()


async def _next(events: AsyncIterator[BatchEvent]) -> BatchEvent | None:
    """The next event, or None at the end (a task cannot end in StopAsyncIteration cleanly)."""
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None


@contextlib.contextmanager
def warnings_on(view: View) -> Iterator[None]:
    """Within the block the library's warnings go to the view's bottom line, not to stderr
    (where they would scroll the table away on the same terminal)."""
    logger = logging.getLogger("aiobatches")

    def divert(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            view.warn(record.getMessage())
            return False
        return True

    logger.addFilter(divert)
    try:
        yield
    finally:
        logger.removeFilter(divert)
