"""`aiobatches watch` on a real pseudo-terminal, read back through a terminal emulator (pyte):
the table redrawn in place, a resize, its own end, Ctrl-C, SIGTERM, and the demo moving."""

from __future__ import annotations

import asyncio
import copy
import fcntl
import os
import pty
import re
import signal
import struct
import termios
import threading
from collections.abc import Callable
from typing import Any

import pyte
from _helpers import COMMAND, child_env
from _scripted import KEY, ScriptedServer, batch
from pyte import modes

PROMPT = "$ aiobatches watch"
FRAME_END = b"\x1b[?2026l"
"""What ends each frame the view draws (synchronized output ends)."""
ALTERNATE = 1049


class Screen(pyte.Screen):
    """pyte's screen plus the alternate screen (private mode 1049), which pyte ignores."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.saved: tuple[Any, Any] | None = None

    def set_mode(self, *mode_list: int, **kwargs: Any) -> None:
        if kwargs.get("private") and ALTERNATE in mode_list and self.saved is None:
            self.saved = (copy.deepcopy(self.buffer), copy.copy(self.cursor))
            self.erase_in_display(2)
        super().set_mode(*mode_list, **kwargs)

    def reset_mode(self, *mode_list: int, **kwargs: Any) -> None:
        if kwargs.get("private") and ALTERNATE in mode_list and self.saved is not None:
            (self.buffer, self.cursor), self.saved = self.saved, None
            self.dirty.update(range(self.lines))
        super().reset_mode(*mode_list, **kwargs)


class Terminal:
    """A pseudo-terminal of a given size whose output a reader thread feeds to a `Screen`;
    `frames` holds the screen as it was after each whole frame."""

    def __init__(self, columns: int, lines: int) -> None:
        self.master, self.slave = pty.openpty()
        self.resize(columns, lines)
        self.screen = Screen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)
        self.stream.feed(f"{PROMPT}\r\n".encode())
        self.frames: list[list[str]] = []
        self.raw = bytearray()
        self._lock = threading.Lock()

    def resize(self, columns: int, lines: int) -> None:
        """Tell the terminal its new size, as a window resized by hand does."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))

    def read(self) -> None:
        """Feed everything the child writes to the screen, until it closes its end."""
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the child is gone
                return
            if not chunk:
                return
            with self._lock:
                self.raw += chunk
                *whole, rest = chunk.split(FRAME_END)
                for piece in whole:
                    self.stream.feed(piece + FRAME_END)
                    self.frames.append(list(self.screen.display))
                self.stream.feed(rest)

    def last_frame(self) -> list[str]:
        with self._lock:
            return list(self.frames[-1]) if self.frames else []

    def cursor_hidden(self) -> bool:
        with self._lock:
            return bool(self.screen.cursor.hidden)

    def display(self) -> list[str]:
        with self._lock:
            return [line.rstrip() for line in self.screen.display]

    async def until(self, condition: Callable[[list[str]], bool]) -> list[str]:
        """The first whole frame (from now on) for which `condition` holds: a hang guard of
        thirty seconds, not a timing."""
        for _ in range(1500):
            frame = self.last_frame()
            if frame and condition(frame):
                return frame
            await asyncio.sleep(0.02)
        raise AssertionError("no frame as expected; the last:\n" + "\n".join(self.last_frame()))


def holding(text: str) -> Callable[[list[str]], bool]:
    return lambda frame: any(text in line for line in frame)


async def watching(
    terminal: Terminal, *args: str
) -> tuple[asyncio.subprocess.Process, asyncio.Future[None]]:
    """`aiobatches watch ARGS` on the terminal, and the reader of its output."""
    env = {k: v for k, v in child_env(TERM="xterm").items() if k not in ("COLUMNS", "LINES")}
    env.pop("NO_COLOR", None)
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "watch",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=terminal.slave,
        stderr=terminal.slave,
        env=env,
        start_new_session=True,
    )
    os.close(terminal.slave)
    reader = asyncio.get_running_loop().run_in_executor(None, terminal.read)
    return process, reader


async def ended(process: asyncio.subprocess.Process, reader: asyncio.Future[None]) -> int:
    async with asyncio.timeout(30):
        code = await process.wait()
        await reader
    return code


def scripted(watched: ScriptedServer, *args: str) -> tuple[str, ...]:
    return ("--base-url", watched.url, "--api-key", KEY, "--interval", "0.05", *args)


async def test_the_table_is_redrawn_in_place_and_ctrl_c_gives_the_screen_back(
    watched: ScriptedServer,
) -> None:
    """The table is redrawn in place on the alternate screen; Ctrl-C exits 130 and restores it."""
    terminal = Terminal(100, 30)
    process, reader = await watching(terminal, *scripted(watched))
    try:
        await terminal.until(holding("2 unfinished · 1 finished"))
        hidden = terminal.cursor_hidden()
        watched.batches[0] = batch(1, "in_progress", done=500)
        watched.batches.insert(0, batch(0, "validating"))
        # The cycle's two events may straddle a redraw: wait for the frame showing both.
        frame = await terminal.until(
            lambda shown: (
                holding("3 unfinished · 1 finished")(shown) and holding("500/1,000")(shown)
            )
        )
    finally:
        process.send_signal(signal.SIGINT)
        code = await ended(process, reader)
    assert frame[0].startswith("aiobatches watch · 3 unfinished · 1 finished · every 0.05s")
    rows = [line.split() for line in frame[2:7]]
    assert frame[1].split()[:4] == ["ID", "STATUS", "PROGRESS", "DONE/TOTAL"]
    assert [row[:2] for row in rows[:3]] == [
        ["batch_000000", "validating"],
        ["batch_000001", "in_progress"],
        ["batch_000002", "validating"],
    ]
    bar = rows[1][2]
    assert bar == "█" * (len(bar) // 2) + "░" * (len(bar) - len(bar) // 2)
    assert rows[1][3:5] == ["50%", "500/1,000"]
    assert frame[5].startswith("── latest finished ──")
    assert rows[4][:2] == ["batch_000003", "completed"]
    assert all(not line.strip() for line in frame[7:-1])
    assert frame[-1].rstrip() == "█ completed  ▒ failed  ░ to do  ·  Ctrl-C to quit"
    assert code == 130
    assert hidden
    assert terminal.display() == [PROMPT] + [""] * 29
    assert not terminal.cursor_hidden()
    assert modes.DECAWM in terminal.screen.mode
    assert b"Traceback" not in terminal.raw


async def test_sigterm_exits_143_and_gives_the_screen_back(watched: ScriptedServer) -> None:
    """SIGTERM (`timeout`, `kill`) exits 143 and restores the screen, the cursor and wrapping."""
    terminal = Terminal(100, 30)
    process, reader = await watching(terminal, *scripted(watched))
    try:
        await terminal.until(holding("2 unfinished · 1 finished"))
        hidden = terminal.cursor_hidden()
    finally:
        process.terminate()
        code = await ended(process, reader)
    assert code == 143
    assert hidden
    assert terminal.display() == [PROMPT] + [""] * 29
    assert not terminal.cursor_hidden()
    assert modes.DECAWM in terminal.screen.mode
    assert b"Traceback" not in terminal.raw


async def test_a_resized_terminal_gets_a_table_of_its_new_size(watched: ScriptedServer) -> None:
    """After a resize to 50 by 6, frames fit it and say how many more batches there are."""
    watched.batches = [batch(i, "in_progress", done=10 * i) for i in range(8)]
    watched.batches += [batch(8, "completed"), batch(9, "completed")]
    terminal = Terminal(100, 30)
    process, reader = await watching(terminal, *scripted(watched))
    try:
        await terminal.until(holding("8 unfinished · 2 finished"))
        terminal.resize(50, 6)  # the emulator stays larger: anything beyond 50 by 6 would show
        frame = await terminal.until(holding("more unfinished"))
    finally:
        process.send_signal(signal.SIGINT)
        code = await ended(process, reader)
    assert code == 130
    assert all(not line.strip() for line in frame[6:])
    assert all(not line[50:].strip() for line in frame)
    assert frame[0].startswith("aiobatches watch · 8 unfinished")
    assert [line.split()[:2] for line in frame[2:5]] == [
        ["batch_000000", "in_progress"],
        ["batch_000001", "in_progress"],
        ["batch_000002", "in_progress"],
    ]
    assert frame[5].rstrip() == "… and 5 more unfinished"


async def test_a_watch_that_ends_leaves_its_last_table_on_the_screen(
    watched: ScriptedServer,
) -> None:
    """A watch ending by itself (--until-finished) exits 0 and leaves its last table on screen."""
    watched.batches = [batch(1, "completed", done=1000), batch(2, "failed")]
    terminal = Terminal(100, 30)
    process, reader = await watching(terminal, *scripted(watched, "--until-finished"))
    code = await ended(process, reader)
    assert code == 0
    shown = terminal.display()
    assert shown[0] == PROMPT
    assert shown[1].startswith("aiobatches watch · 0 unfinished · 2 finished")
    assert shown[3] == "no unfinished batches"
    assert sorted(line.split()[:2] for line in shown[5:7]) == [
        ["batch_000001", "completed"],
        ["batch_000002", "failed"],
    ]
    assert shown[7:] == [""] * 23
    assert not terminal.cursor_hidden()


DONE = re.compile(r"(batch_\w+)\s+in_progress\s+\S+\s+\d+%\s+([\d,]+)/")


async def test_the_demo_moves_within_seconds() -> None:
    """`watch --demo`, with no key: an in-progress batch's count grows between two frames."""
    terminal = Terminal(100, 30)
    process, reader = await watching(terminal, "--demo")
    try:
        first = await terminal.until(lambda frame: bool(DONE.search("\n".join(frame))))
        before = dict(DONE.findall("\n".join(first)))
        later = await terminal.until(
            lambda frame: any(
                before.get(batch_id) not in (None, done)
                for batch_id, done in DONE.findall("\n".join(frame))
            )
        )
    finally:
        process.send_signal(signal.SIGINT)
        code = await ended(process, reader)
    assert code == 130
    assert later[0].startswith("aiobatches watch · ")
    assert terminal.display()[0] == PROMPT
