"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import aiobatches
from aiobatches.testing import FakeBatchesServer

API_KEY: Final = "sk-test-0123456789abcdef"
COMMAND: Final = (sys.executable, "-m", "aiobatches")
"""The command line as a user runs it, in a child process."""

MakeServer = Callable[..., Awaitable[FakeBatchesServer]]
"""Starts `FakeBatchesServer(*args, **kwargs)`; the `make_server` fixture closes it."""
RunCli = Callable[..., Awaitable[tuple[int, str, str]]]
"""Runs `aiobatches ARGS` in this process; its exit code, stdout and stderr."""


def stream_tasks() -> list[asyncio.Task[object]]:
    """Tasks started by aiobatches streams that are still running."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("aiobatches") and not task.done()
    ]


def ids(batches: Iterable[aiobatches.Batch]) -> list[str]:
    """The ids of some batches, in order."""
    return [batch.id for batch in batches]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this test's (see `clean_env`), plus `extra`."""
    return {**os.environ, **extra}


def read_pty(fd: int) -> bytes:
    """Everything a pseudo-terminal shows until its other end closes."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def served_ids(server: FakeBatchesServer) -> list[str]:
    """Every batch id the server holds, newest first."""
    return [batch["id"] for batch in server.batches]


async def eventually(condition: Callable[[], bool]) -> bool:
    """Whether `condition` holds within a bounded number of loop turns: a hang guard for what
    the loop finishes in the background (a peer seeing a close), not a timing."""
    for turn in range(600):
        if condition():
            return True
        await asyncio.sleep(0 if turn < 100 else 0.01)
    return condition()
