"""Fixtures: running fake servers, a client bound to one, the command line, and an HTTP mock."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from _helpers import API_KEY, MakeServer, RunCli, aim_recipe_at, stream_tasks
from _scripted import ScriptedServer, watched_batches
from aiohttp import ClientResponse
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core

import aiobatches
from aiobatches._cli import main
from aiobatches.testing import FakeBatchesServer


def pytest_configure(config: pytest.Config) -> None:
    """Let the Ctrl-C tests reach their children however the suite was started.

    A shell starts a background job with SIGINT ignored, every child inherits that,
    and Python then installs no KeyboardInterrupt handler; a handled signal is reset
    to the default in a child instead.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy, netrc, OpenAI or Azure setting from the developer's environment reaches a test."""
    for name in list(os.environ):
        upper = name.upper()
        if (
            upper.endswith("_PROXY")
            or upper == "NETRC"
            or upper.startswith(("OPENAI_", "AZURE_OPENAI_"))
        ):
            monkeypatch.delenv(name)


@pytest.fixture
async def make_server() -> AsyncIterator[MakeServer]:
    """Start `FakeBatchesServer(*args, **kwargs)` on port 0; each one is closed at teardown."""
    async with contextlib.AsyncExitStack() as started:

        async def make(*args: Any, **kwargs: Any) -> FakeBatchesServer:
            return await started.enter_async_context(FakeBatchesServer(*args, **kwargs))

        yield make


@pytest.fixture
async def upstream(make_server: MakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeBatchesServer:
    """1000 batches as a docs web recipe's `aiobatches.Client()` sees them (the environment)."""
    server = await make_server(count=1000, api_key=API_KEY)
    aim_recipe_at(server, monkeypatch)
    return server


@pytest.fixture
async def server(make_server: MakeServer, request: pytest.FixtureRequest) -> FakeBatchesServer:
    """A fake endpoint of 250 seeded batches requiring API_KEY; `@pytest.mark.server(count=60)`
    (on a test or a module) changes its arguments."""
    marker = request.node.get_closest_marker("server")
    options: dict[str, Any] = {"count": 250, "api_key": API_KEY}
    if marker is not None:
        options.update(marker.kwargs)
    return await make_server(**options)


@pytest.fixture
async def client(server: FakeBatchesServer) -> AsyncIterator[aiobatches.Client]:
    """A client bound to the fake server."""
    async with aiobatches.Client(api_key=API_KEY, base_url=server.url) as bound:
        yield bound


@pytest.fixture
async def make_scripted() -> AsyncIterator[Callable[..., Awaitable[ScriptedServer]]]:
    """Start `ScriptedServer(batches)`, whose batches a test rewrites between polls; each one
    is closed at teardown."""
    async with contextlib.AsyncExitStack() as started:

        async def make(batches: list[dict[str, Any]]) -> ScriptedServer:
            return await started.enter_async_context(ScriptedServer(batches))

        yield make


@pytest.fixture
async def scripted(make_scripted: Callable[..., Awaitable[ScriptedServer]]) -> ScriptedServer:
    """A scripted server holding no batches yet; each test sets its own."""
    return await make_scripted([])


@pytest.fixture
async def watched(make_scripted: Callable[..., Awaitable[ScriptedServer]]) -> ScriptedServer:
    """A scripted server holding what a watch starts from (`watched_batches()`)."""
    return await make_scripted(watched_batches())


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Run `aiobatches ARGS` in this process; its exit code, stdout and stderr.

    `main` runs in a worker thread (it starts its own event loop), so a server on
    the test's loop keeps serving meanwhile.
    """

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()  # only what this command prints
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


class _FinishedUpload:
    """Stands in for the request writer aiohttp >= 3.14 hands each response."""

    output_size = 0


class _CompatResponse(ClientResponse):
    """aioresponses 0.7.9 builds responses without aiohttp 3.14's `stream_writer`
    (pnuckowski/aioresponses#289); supply a finished upload so mocks keep working."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _FinishedUpload())
        super().__init__(*args, **kwargs)


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """Intercept every aiohttp request made in the test."""
    if "stream_writer" in inspect.signature(ClientResponse.__init__).parameters:
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatResponse)
    with aioresponses() as mock:
        yield mock


@pytest.fixture(autouse=True)
async def no_leaks() -> AsyncIterator[None]:
    """Fail a test that leaves a stream task running or makes the loop report an error."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    yield
    await asyncio.sleep(0)
    assert stream_tasks() == []
    assert reported == []
    loop.set_exception_handler(None)
