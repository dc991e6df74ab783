"""aiobatches inside a web backend: the docs' aiohttp.web recipe, caller disconnects, and load."""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from _helpers import (
    API_KEY,
    MakeServer,
    aim_recipe_at,
    eventually,
    ids,
    stream_tasks,
    web_recipe,
)
from aiohttp.test_utils import TestServer

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, synthetic_batches

AIOHTTP_RECIPE = "# recipe: aiohttp.web NDJSON endpoint"


@pytest.fixture
async def app_url(upstream: FakeBatchesServer) -> AsyncIterator[str]:
    """The recipe's app served over real HTTP on 127.0.0.1."""
    server = TestServer(web_recipe(AIOHTTP_RECIPE).make_app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/batches"))
    finally:
        await server.close()


async def test_recipe_streams_every_batch_as_ndjson(
    upstream: FakeBatchesServer, app_url: str
) -> None:
    """GET /batches returns every upstream batch, newest first, one JSON object per line."""
    async with aiohttp.ClientSession() as session, session.get(app_url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/x-ndjson"
        lines = (await response.text()).splitlines()
    got = [json.loads(line) for line in lines]
    assert [batch["id"] for batch in got] == [batch["id"] for batch in upstream.batches]
    assert got[0]["status"] == upstream.batches[0]["status"]
    after = upstream.batches[899]["id"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(app_url, params={"after": after}) as response,
    ):
        rest = (await response.text()).splitlines()
    assert [json.loads(line)["id"] for line in rest] == [b["id"] for b in upstream.batches[900:]]


async def test_upstream_refusals_become_the_responses_status(
    upstream: FakeBatchesServer, app_url: str
) -> None:
    """An unknown `after` is the caller's 400, with the upstream's reason; an upstream that
    refuses the app is a 502; neither sends a half body under a 200."""
    upstream.faults = {1: Fault.respond(403)}  # the second list request: the 502 case
    async with aiohttp.ClientSession() as session:
        async with session.get(app_url, params={"after": "batch_unknown"}) as response:
            unknown = response.status, await response.text()
        async with session.get(app_url) as response:
            refused = response.status
    assert unknown[0] == 400
    assert "batch_unknown" in unknown[1]
    assert refused == 502


async def test_a_failure_part_way_ends_the_body_with_where_to_resume(
    upstream: FakeBatchesServer, app_url: str
) -> None:
    """An upstream failure after the first page ends the body with an `error` line whose
    `after` resumes the listing with no gap and no repeat."""
    upstream.faults = {1: Fault.respond(403)}  # the second page (not retried)
    async with aiohttp.ClientSession() as session:
        async with session.get(app_url) as response:
            status = response.status
            *lines, last = [json.loads(line) for line in (await response.text()).splitlines()]
        async with session.get(app_url, params={"after": last["after"]}) as response:
            rest = [json.loads(line) for line in (await response.text()).splitlines()]
    assert status == 200
    assert "403" in last["error"]
    assert [batch["id"] for batch in lines + rest] == [b["id"] for b in upstream.batches]


async def test_counts_beyond_64_bits_reach_the_caller_exactly(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A count too large for orjson reaches the caller exactly, not as a broken stream."""
    batches = synthetic_batches(3, seed=7)
    huge = 2**70 + 1
    batches[1] = {**batches[1], "request_counts": {"total": huge, "completed": huge, "failed": 0}}
    upstream = await make_server(batches=batches, api_key=API_KEY)
    aim_recipe_at(upstream, monkeypatch)
    server = TestServer(web_recipe(AIOHTTP_RECIPE).make_app(), host="127.0.0.1")
    await server.start_server()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(server.make_url("/batches")) as response,
        ):
            got = [json.loads(line) for line in (await response.text()).splitlines()]
    finally:
        await server.close()
    assert [batch["id"] for batch in got] == [batch["id"] for batch in batches]
    assert got[1]["request_counts"] == {"total": huge, "completed": huge, "failed": 0}


async def test_caller_disconnect_stops_the_stream_and_its_prefetch(
    upstream: FakeBatchesServer, app_url: str
) -> None:
    """When the caller goes away mid-stream, the upstream sees no further page requests."""
    upstream.latency = 0.1
    async with aiohttp.ClientSession() as session:
        response = await session.get(app_url)
        first = await response.content.readline()
        assert json.loads(first)["id"] == upstream.batches[0]["id"]
        response.close()  # drop the connection mid-stream
    async with asyncio.timeout(10):
        while stream_tasks():
            await asyncio.sleep(0.01)
    seen = len(upstream.page_requests)
    await asyncio.sleep(0.5)
    assert len(upstream.page_requests) == seen
    assert seen < 5
    assert stream_tasks() == []


async def load(streams: int, limit: int) -> dict[str, Any]:
    """`streams` concurrent streams on one Client (connection_limit=`limit`) against one server:
    each checked for exactly its batches in order. Returns the figures."""
    rng = random.Random(2026)
    async with FakeBatchesServer(count=400, api_key=API_KEY, latency=0.005) as server:
        all_ids = [batch["id"] for batch in server.batches]
        client = aiobatches.Client(api_key=API_KEY, base_url=server.url, connection_limit=limit)

        async def one() -> int:
            start = rng.randrange(len(all_ids))
            after = None if start == 0 else all_ids[start - 1]
            size, prefetch = rng.randint(1, 100), rng.randint(0, 3)
            max_items = rng.choice([None, rng.randint(1, 300)])
            got = await client.list_batches(
                after=after, limit=size, prefetch=prefetch, max_items=max_items
            ).to_list()
            assert ids(got) == all_ids[start:][:max_items]
            return len(got)

        started = time.perf_counter()
        async with client:
            counts = await asyncio.gather(*(one() for _ in range(streams)))
        wall = time.perf_counter() - started
        assert await eventually(lambda: server.open_connections == 0)  # the owned session closed
        return {
            "streams": streams,
            "batches": sum(counts),
            "page requests": len(server.page_requests),
            "peak open connections": server.peak_connections,
            "wall s": round(wall, 2),
        }


async def test_one_client_serves_200_concurrent_streams() -> None:
    """200 concurrent streams on one client each get exactly their batches, within its limit."""
    figures = await load(streams=200, limit=20)
    assert 1 <= figures["peak open connections"] <= 20
    assert figures["batches"] > 10_000
    assert stream_tasks() == []


def test_connection_limit_default_is_documented() -> None:
    """The owned session's connector limit defaults to 100, as API.md says."""
    assert inspect.signature(aiobatches.Client).parameters["connection_limit"].default == 100
