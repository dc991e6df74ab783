"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import sys
import termios
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Self

import pytest
from aiohttp import web

import aiobatches
from aiobatches.testing import FakeBatchesServer

API_KEY: Final = "sk-test-0123456789abcdef"
MOCK_BASE: Final = "https://api.example.test/v1"
"""The base URL of the tests that mock HTTP with aioresponses (nothing listens there)."""
MOCK_LIST: Final = re.compile(r"^https://api\.example\.test/v1/batches(\?.*)?$")
"""Every list request to MOCK_BASE, whatever its query."""
AZURE_VERSION: Final = "2024-10-21"
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


def ids(batches: Iterable[aiobatches.Batch | aiobatches.MessageBatch]) -> list[str]:
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


async def shown_on_terminal(
    *args: str, columns: int | None = None, stderr_too: bool = False
) -> bytes:
    """What `aiobatches ARGS` shows on a terminal (`columns` wide, else as the pty is),
    stderr on the same terminal if `stderr_too`, else not shown; it must exit 0."""
    master, slave = pty.openpty()
    env = child_env()
    if columns is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        env.pop("COLUMNS", None)
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=slave,
        stderr=slave if stderr_too else asyncio.subprocess.DEVNULL,
        env=env,
    )
    os.close(slave)
    try:
        shown = await asyncio.to_thread(read_pty, master)
    finally:
        os.close(master)
    async with asyncio.timeout(30):
        assert await process.wait() == 0
    return shown


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


def envelope(items: Sequence[Mapping[str, Any]], *, has_more: bool = False) -> dict[str, Any]:
    """A list response around some batches, as the API shapes it."""
    return {
        "object": "list",
        "data": list(items),
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


SERVER_DELAYS: Final[list[tuple[dict[str, str], float]]] = [
    ({"retry-after-ms": "5"}, 0.005),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"retry-after": "2"}, 2.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after": "0.25"}, 0.25),
    ({"retry-after": "120"}, 120.0),
]
"""Retry headers a server may send, and the delay in seconds each asks for."""
UNUSABLE_SERVER_DELAYS: Final[list[dict[str, str]]] = [
    {},
    {"retry-after": "inf"},
    {"retry-after": "nan"},
    {"retry-after": "-1100"},
    {"retry-after": "0"},
    {"retry-after": "soon"},
    {"retry-after": "after lunch"},
    {"retry-after": ""},
    {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"},  # in the past
    {"retry-after": "Sun, 06 Nov 1994 08:49:37 -0000"},  # in the past, no zone
    {"retry-after": "Mon, 01 Jan 99999999999 00:00:00 GMT"},  # beyond any calendar
    {"retry-after-ms": "inf"},
    {"retry-after-ms": "-5"},
    {"retry-after-ms": "x"},
]
"""Retry headers that ask for no usable delay (not finite, not positive, unparsable, past):
the client falls back to its own backoff."""


def unsafe_for_terminal(*allowed: str) -> re.Pattern[str]:
    """A character that must not reach a terminal raw: C0 and C1 controls, DEL, bidi overrides
    and isolates, except those `allowed` (the newline ending each line, say)."""
    unsafe = "[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
    if not allowed:
        return re.compile(unsafe)
    return re.compile(f"(?![{re.escape(''.join(allowed))}]){unsafe}")


WEB_PAGE: Final = Path(__file__).parent.parent / "docs" / "web.md"
"""The docs page of the web backend recipes."""


def web_recipe(first_line: str) -> types.ModuleType:
    """The web page's python block that starts with `first_line`, executed as a module: the
    test runs exactly what users read."""
    pattern = rf"```python\n({re.escape(first_line)}\n.*?)```"
    match = re.search(pattern, WEB_PAGE.read_text(), re.S)
    assert match is not None, f"no python block of docs/web.md starts with {first_line!r}"
    module = types.ModuleType("recipe")
    exec(compile(match.group(1), str(WEB_PAGE), "exec"), module.__dict__)  # noqa: S102
    return module


def aim_recipe_at(server: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point a recipe's `aiobatches.Client()` at `server`, through the environment."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)


class LoopbackServer:
    """A scripted server of the list and retrieve endpoints on 127.0.0.1 (port 0), over
    real HTTP; a subclass answers `_list` and `_retrieve`, and `url` is its `/v1` base."""

    url = ""
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/v1/batches", self._list)
        app.router.add_get("/v1/batches/{batch_id}", self._retrieve)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _list(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def _retrieve(self, request: web.Request) -> web.Response:
        raise NotImplementedError
