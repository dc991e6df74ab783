"""Fixtures: a running fake server, a client bound to it, and an HTTP mock."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from _helpers import API_KEY, stream_tasks
from aiohttp import ClientResponse
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core

import aiobatches
from aiobatches.testing import FakeBatchesServer


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
async def server() -> AsyncIterator[FakeBatchesServer]:
    """A fake endpoint with 250 seeded batches that requires API_KEY."""
    async with FakeBatchesServer(count=250, api_key=API_KEY) as running:
        yield running


@pytest.fixture
async def client(server: FakeBatchesServer) -> AsyncIterator[aiobatches.Client]:
    """A client bound to the fake server."""
    async with aiobatches.Client(api_key=API_KEY, base_url=server.url) as bound:
        yield bound


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
