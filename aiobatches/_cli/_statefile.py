"""`watch --state FILE`: the watch's checkpoint read from FILE to resume, and saved to it
atomically as events are handled, so that FILE always holds a whole checkpoint that says
exactly what the output already told (or, after a crash, a little less: never more).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, Self

from .. import BatchEvent, BatchWatch
from .._models import AnyBatch
from ._common import EXIT_FAILED, EXIT_USAGE, CommandError, reason

MAX_BYTES: Final = 64 * 2**20
"""The largest state file read: a checkpoint holds the unfinished batches, a few
kilobytes each, so 64 MiB is tens of thousands of them."""
SETTLE: Final = 0.05
"""Seconds the next event may take to come before the checkpoint is saved: events that
come in a burst (a page of them) are saved once, after the burst."""


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint FILE holds, or None when there is no FILE; one that cannot be read
    or is not a JSON object is a usage error, and the file is left as it is."""
    try:
        raw = _read(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CommandError(
            f"cannot read the state file {path}: {reason(error)}", EXIT_USAGE
        ) from None
    if raw is None:
        raise CommandError(
            f"the state file {path} is no watch state (not a regular file of at most"
            f" {MAX_BYTES // 2**20} MiB); remove it to start afresh",
            EXIT_USAGE,
        )
    try:
        state = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        state = None
    if not isinstance(state, dict):
        raise CommandError(
            f"the state file {path} holds no watch state (not a JSON object);"
            " remove it to start afresh",
            EXIT_USAGE,
        )
    return state


def _read(path: Path) -> bytes | None:
    """FILE's bytes, or None when it is no regular file (a FIFO, `/dev/zero`) or is
    larger than any checkpoint: neither is read, so neither hangs nor fills memory."""
    # Opened without waiting: a FIFO with no writer would block an ordinary open.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_BYTES:
            return None
        raw = file.read(MAX_BYTES + 1)
    return raw if len(raw) <= MAX_BYTES else None


def save(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to a temporary file beside `path`, on disk, then rename it over `path`:
    a reader (or a crash) sees the old checkpoint or the new one, never part of one."""
    text = json.dumps(state, separators=(",", ":"))
    directory = path.parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise CommandError(
            f"cannot save the state file {path}: {reason(error)}", EXIT_FAILED
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        Path(temporary).replace(path)
    except OSError as error:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise CommandError(
            f"cannot save the state file {path}: {reason(error)}", EXIT_FAILED
        ) from None
    _sync_directory(directory)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable, where the system lets a directory be synced."""
    with contextlib.suppress(OSError):  # Windows, some file systems: the rename is what there is
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Saved:
    """The watch's events, its checkpoint saved to `path` whenever the events handed out
    have been handled and the next one is not there yet, and once more at the end.

    An event counts as handled when the next one is asked for: the command writes it
    first. The next event is awaited in a task the caller's cancellation leaves alone, so
    that the watch still holds its queue when the last checkpoint is taken.
    """

    def __init__(self, watch: BatchWatch[Any], path: Path) -> None:
        self._watch = watch
        self._path = path
        self._pending: asyncio.Task[BatchEvent[AnyBatch] | None] | None = None
        self._unsaved = False
        """Events were handled since the last save."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchEvent[AnyBatch]:
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_task(
                _next(self._watch), name="aiobatches watch state"
            )
        if self._unsaved:
            done, _ = await asyncio.wait({self._pending}, timeout=SETTLE)
            if not done:
                self._save()
        await asyncio.wait({self._pending})
        pending, self._pending = self._pending, None
        try:
            event = pending.result()
        except Exception:
            self._save()  # the watch failed with every event before out: all are handled
            raise
        if event is None:
            self._save()
            raise StopAsyncIteration
        self._unsaved = True
        return event

    def _save(self) -> None:
        if self._unsaved:
            save(self._path, self._watch.checkpoint())
            self._unsaved = False

    async def aclose(self) -> None:
        """Save what was handled, then stop waiting for the next event.

        An event the watch handed out but that never reached the command (its task was
        done when the command ended) is in no saved checkpoint: the resumed watch tells it
        again, with the events since the last save, rather than never."""
        pending, self._pending = self._pending, None
        if not _undelivered(pending):
            self._save()
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})
            if not pending.cancelled():
                pending.exception()  # retrieved: the command ends for another reason


def _undelivered(pending: asyncio.Task[BatchEvent[AnyBatch] | None] | None) -> bool:
    """Whether `pending` holds an event the watch handed out that the command never got."""
    if pending is None or not pending.done() or pending.cancelled():
        return False
    return pending.exception() is None and pending.result() is not None


async def _next(events: AsyncIterator[BatchEvent[AnyBatch]]) -> BatchEvent[AnyBatch] | None:
    """The next event, or None at the end (a task cannot end in StopAsyncIteration cleanly)."""
    try:
        return await anext(events)
    except StopAsyncIteration:
        return None
