"""How a watch's board is laid out for one terminal size: a header, unfinished batches
first with their progress, then the latest finished ones (most recently finished first),
and on a live screen a legend of the bar and how to quit.

Every time shown is the server's (the batches' own stamps), in one format, so that a
demo's clock and this machine's are never shown side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from attrs import frozen

from .._models import AnyBatch
from ._board import Board, reached_at
from ._terminal import clip, for_terminal, pad, width
from ._view import human_time, view_of

_SPACE: Final = "  "
_LEGEND_ROWS: Final = 10
"""The fewest rows that show the legend: a smaller terminal keeps every row for batches."""
_PERCENT: Final = 4

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
    "canceling": YELLOW,
    "in_progress": CYAN,
    "ended": GREEN,
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

    def legend(self) -> str:
        """What the bar's glyphs mean, and how to leave a live screen."""
        bar = f"{self.done} completed  {self.failed} failed  {self.todo} to do"
        return f"{bar}  {self.dot}  Ctrl-C to quit"


@frozen
class _Column:
    title: str
    minimum: int
    maximum: int


_COLUMNS: Final = {
    "id": _Column("ID", 8, 64),
    "status": _Column("STATUS", 6, 16),
    "progress": _Column("PROGRESS", 20, 36),
    "done": _Column("DONE/TOTAL", 10, 40),
    "failed": _Column("FAILED", 6, 24),
    "since": _Column("SINCE", 12, 24),
    "model": _Column("MODEL", 8, 28),
    "created": _Column("CREATED", 12, 24),
}
"""In order of importance: a narrow terminal drops columns from the end. SINCE is when
the batch reached its status (a finished one, when it finished: the order of the latest)."""


def render(
    board: Board,
    columns: int,
    rows: int,
    *,
    interval: float,
    glyphs: Glyphs,
    legend: str | None = None,
) -> list[Line]:
    """The screen for `board` at this size: never wider than `columns`, never taller than
    `rows`; with a `legend`, that is its bottom line when there is room for it."""
    columns, rows = max(columns, 1), max(rows, 1)
    header = f" {glyphs.dot} ".join(_header(board, interval))
    lines: list[Line] = [[(clip(header, columns, ellipsis=glyphs.ellipsis), BOLD)]]
    note = None if board.note is None else for_terminal(board.note)
    footer = legend if rows >= _LEGEND_ROWS else None
    room = rows - 2 - (note is not None) - (footer is not None)
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
        waiting = "no unfinished batches" if board.seen_any else f"listing{glyphs.ellipsis}"
        lines.append([(waiting, DIM)])
    if finished:
        title = f"{glyphs.rule * 2} latest finished "
        lines.append([(title + glyphs.rule * (columns - width(title)), DIM)])
        lines.extend(table.row(batch) for batch in finished)
    if note is not None:
        lines.append([(clip(note, columns, ellipsis=glyphs.ellipsis), YELLOW)])
    if footer is not None:
        lines = lines[: rows - 1]
        lines.extend([[]] * (rows - 1 - len(lines)))  # the legend on the bottom line
        lines.append([(clip(footer, columns, ellipsis=glyphs.ellipsis), DIM)])
    return [_fit_line(line, columns) for line in lines[:rows]]


def server_time(stamp: int | None) -> str:
    """A time stamp of the server's, as the watch shows every time: `11-13 02:35Z`."""
    return human_time(stamp, "%m-%d %H:%MZ")


def _header(board: Board, interval: float) -> list[str]:
    parts = [
        "aiobatches watch",
        f"{len(board.unfinished):,} unfinished",
        f"{board.finished_count:,} finished",
        f"every {interval:g}s",
    ]
    if board.webhooks is not None:
        tally = board.webhooks
        refused = f" ({tally.refused:,} refused)" if tally.refused else ""
        webhooks = "webhook" if tally.received == 1 else "webhooks"
        parts.append(f"{tally.received:,} {webhooks} at {tally.url}{refused}")
    if board.statuses:
        parts.append("status " + ",".join(sorted(for_terminal(s) for s in board.statuses)))
    if board.last_change is not None:
        parts.append(f"last change {server_time(board.last_change)}")
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

    def __init__(self, batches: Sequence[AnyBatch], columns: int, glyphs: Glyphs) -> None:
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

    def row(self, batch: AnyBatch) -> Line:
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

    def _bar(self, batch: AnyBatch, size: int) -> Line:
        """A bar of completed (and failed) requests out of the total, and the share processed."""
        bar = size - 1 - _PERCENT
        counts = view_of(batch).tally(batch)
        if counts is None or counts.total <= 0:
            return [(" " * size, "")]
        total = counts.total
        completed = min(max(counts.done, 0), total)
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


def _cells(batch: AnyBatch) -> dict[str, str]:
    view = view_of(batch)
    return {
        "id": for_terminal(batch.id),
        "status": for_terminal(view.status(batch)),
        "progress": "",
        "done": view.done(batch),
        "failed": view.failed(batch),
        "since": server_time(reached_at(batch)),
        "model": for_terminal(view.model(batch)),
        "created": server_time(view.created(batch)),
    }


def _style(batch: AnyBatch) -> str:
    return _STATUS_STYLES.get(view_of(batch).status(batch), "")
