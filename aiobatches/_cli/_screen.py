"""The terminal of `aiobatches watch`: the screen the table is drawn on, and the loop that
feeds a watch's events to it.

`Screen` owns the terminal while the view shows and gives it back however the watch
ends; `View` draws the board (laid out by `render`) on it; `follow` feeds a watch's
events through them, redrawing at most a few times a second and whenever the terminal
changes size.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Final, Self, TextIO

from .. import BatchEvent
from .._models import AnyBatch
from ._board import Board
from ._layout import Glyphs, Line, render

_GAP: Final = 0.2
"""Seconds between redraws at least: a cycle's events, however many, make a few frames."""
_IDLE: Final = 0.5
"""Seconds between looks at the terminal's size while nothing happens."""


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

    def frame(self, *, legend: bool = True) -> list[Line]:
        """The board laid out for the terminal's size now (noted, so a resize is seen); on a
        live screen with the `legend` of its bar and how to quit at the bottom."""
        columns, rows = self._size = self._screen.size()
        glyphs = self._screen.glyphs
        shown = glyphs.legend() if legend and self._screen.live else None
        return render(
            self.board, columns, rows, interval=self._interval, glyphs=glyphs, legend=shown
        )

    def draw(self) -> None:
        self._screen.draw(self.frame())
        self.dirty = False
        self.drawn_at = time.monotonic()

    def refresh(self) -> None:
        """Redraw if anything changed since the last frame, the terminal's size included."""
        if self.dirty or self._screen.size() != self._size:
            self.draw()

    def see(self, event: BatchEvent[AnyBatch]) -> None:
        self.board.see(event)
        self.dirty = True

    def touch(self) -> None:
        """Something the board shows besides the batches changed: redraw it."""
        self.dirty = True

    def warn(self, message: str) -> None:
        # In UTC, as the batches' times are: a failure of this side, timed by this machine.
        now = datetime.datetime.now(datetime.UTC)
        self.board.note = f"{now:%H:%M:%S}Z warning: {message}"
        self.dirty = True


async def follow(events: AsyncIterator[BatchEvent[AnyBatch]], view: View) -> None:
    """Show every event on `view` until `events` ends, coalescing redraws.

    The next event is awaited in a task of its own, so that a redraw can happen
    while it is pending without cancelling the watch's request in flight.
    """
    loop = asyncio.get_running_loop()
    view.draw()
    pending: asyncio.Task[BatchEvent[AnyBatch] | None] | None = None
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


async def _next(events: AsyncIterator[BatchEvent[AnyBatch]]) -> BatchEvent[AnyBatch] | None:
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
