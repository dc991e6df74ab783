"""The fake server runs for hours in bounded time and memory: its request log is bounded and
counted rather than scanned, its memory per batch is small, and its living batches are kept
only within a retention window, however far its clock jumps."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
from typing import Any, Final

import aiohttp
import pytest
from _helpers import MakeServer, child_env

from aiobatches._fake import timelines
from aiobatches.testing import FakeBatchesServer, Fault, ManualClock, synthetic_batches

DAY: Final = timelines.DAY
MAX_BYTES_PER_BATCH: Final = 3 * 1024
"""What the server may hold per batch; it held about 10 KiB before it was bounded."""
MEASURE: Final = """
import gc, json, sys, tracemalloc
from aiobatches.testing import FakeBatchesServer, ManualClock
settings = json.loads(sys.argv[1])
clock = ManualClock() if settings.pop("clock") else None
gc.collect()
tracemalloc.start()
server = FakeBatchesServer(clock=clock, **settings)
gc.collect()
held = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
print(json.dumps({"held": held, "served": len(server.batches)}))
"""
"""Builds a server in a fresh interpreter; prints the bytes it holds and the batches it serves."""


async def get(session: aiohttp.ClientSession, url: str) -> int:
    """The status of GET `url`, its body read."""
    async with session.get(url) as response:
        await response.read()
        return response.status


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The creation times of every timeline drawn from now on, in order."""
    drawn: list[int] = []
    draw = timelines.draw_timeline

    def counted(rng: Any, created: int, *, nulls: Any) -> timelines.Timeline:
        drawn.append(created)
        return draw(rng, created, nulls=nulls)

    monkeypatch.setattr(timelines, "draw_timeline", counted)
    return drawn


# --- the request log --------------------------------------------------------------------------


async def test_faults_go_by_the_count_when_nothing_is_recorded(make_server: MakeServer) -> None:
    """With record_requests=0 nothing is kept, yet every request is counted and a fault
    planned for page request 3 hits the fourth list request."""
    server = await make_server(count=5, record_requests=0, faults={3: Fault.respond(503)})
    async with aiohttp.ClientSession() as session:
        statuses = [await get(session, f"{server.url}/batches") for _ in range(5)]
        await get(session, f"{server.url}/batches/{server.batches[0]['id']}")
    assert statuses == [200, 200, 200, 503, 200]
    assert server.requests == server.page_requests == server.retrieve_requests == []
    assert (server.request_count, server.page_request_count) == (6, 5)
    assert server.retrieve_request_count == 1


async def test_the_log_keeps_only_the_latest_requests(make_server: MakeServer) -> None:
    """The log keeps the latest `record_requests`, split by endpoint; the counters count all."""
    server = await make_server(count=5, record_requests=3)
    batch_id = server.batches[0]["id"]
    async with aiohttp.ClientSession() as session:
        for limit in range(1, 5):
            await get(session, f"{server.url}/batches?limit={limit}")
        await get(session, f"{server.url}/batches/{batch_id}")
        await get(session, f"{server.url}/files")
    assert [request.path for request in server.requests] == [
        "/v1/batches",
        f"/v1/batches/{batch_id}",
        "/v1/files",
    ]
    assert [request.query for request in server.page_requests] == [{"limit": "4"}]
    assert len(server.retrieve_requests) == 1
    assert server.request_count == 6
    assert (server.page_request_count, server.retrieve_request_count) == (4, 1)


def test_the_log_is_bounded_by_default() -> None:
    """By default the log keeps the latest 10,000 requests, however long the server runs."""
    parameter = inspect.signature(FakeBatchesServer).parameters["record_requests"]
    assert parameter.default == 10_000


def test_a_negative_log_size_is_refused() -> None:
    """record_requests below 0 is a ValueError naming it."""
    with pytest.raises(ValueError, match="record_requests"):
        FakeBatchesServer(record_requests=-1)


# --- memory per batch -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "served"),
    [
        ({"count": 5_000, "clock": False}, 5_000),
        ({"count": 900, "clock": True}, 900),
        ({"count": 5_000, "clock": True, "retention": 3_650 * DAY}, 5_000),
    ],
    ids=["static", "living", "living-10-years"],
)
def test_each_batch_costs_at_most_3_kib(settings: dict[str, Any], served: int) -> None:
    """Built in a fresh interpreter, a server holds at most 3 KiB per batch it serves."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=child_env(),
    )
    measured = json.loads(result.stdout)
    assert measured["served"] == served
    assert measured["held"] / measured["served"] <= MAX_BYTES_PER_BATCH, measured


# --- the retention window ---------------------------------------------------------------------


def test_a_clock_jump_of_a_year_draws_only_the_window(draws: list[int]) -> None:
    """A year's jump draws no more than a month's would, and serves only the last week."""
    spent = {}
    for days in (30, 365):
        clock = ManualClock()
        server = FakeBatchesServer(count=10, clock=clock, arrival_every=3_600)
        draws.clear()
        clock.advance(days * DAY)
        served = server.batches
        spent[days] = len(draws)
        assert all(batch["created_at"] >= clock.now() - 7 * DAY for batch in served)
        assert len(served) <= 2 * 7 * DAY // 3_600 + 1  # arrivals are at least every 1,800 s
    assert spent[365] <= spent[30] <= 30 * DAY // 1_800


def test_a_long_history_is_drawn_only_within_the_window(draws: list[int]) -> None:
    """Of 5,000 past batches only those of the last week are drawn and served."""
    clock = ManualClock()
    server = FakeBatchesServer(count=5_000, clock=clock)
    served = server.batches
    assert len(draws) == len(served) + 1  # the one drawn beyond the window ends the history
    assert 500 < len(served) < 5_000
    assert min(draws) < clock.now() - 7 * DAY <= min(batch["created_at"] for batch in served)


async def test_batches_older_than_the_retention_vanish(make_server: MakeServer) -> None:
    """A batch older than `retention` is gone from the list, a 404 to retrieve, and a 400 as
    `after`; the batches within it still page through whole."""
    clock = ManualClock()
    server = await make_server(count=250, clock=clock, arrival_every=600, retention=DAY)
    oldest = server.batches[-1]
    clock.advance(oldest["created_at"] + DAY + 1 - clock.now())
    served = server.batches
    assert oldest["id"] not in {batch["id"] for batch in served}
    assert all(batch["created_at"] >= clock.now() - DAY for batch in served)
    async with aiohttp.ClientSession() as session:
        assert await get(session, f"{server.url}/batches/{oldest['id']}") == 404
        assert await get(session, f"{server.url}/batches?after={oldest['id']}") == 400
        listed: list[str] = []
        url: str | None = f"{server.url}/batches?limit=100"
        while url is not None:
            async with session.get(url) as response:
                page = await response.json()
            listed += [batch["id"] for batch in page["data"]]
            url = f"{server.url}/batches?limit=100&after={page['last_id']}"
            url = url if page["has_more"] else None
    assert listed == [batch["id"] for batch in served]


async def test_a_batch_vanishing_during_the_latency_is_not_found(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that grows older than the retention while its answer waits is a 404."""
    clock = ManualClock()
    server = await make_server(count=250, clock=clock, latency=0.125)
    batch_id = server.batches[-1]["id"]
    real_sleep = asyncio.sleep

    async def aging(delay: float) -> None:
        """The server's latency: the clock moves on a week while the answer waits."""
        if delay == server.latency:
            clock.advance(7 * DAY)
            delay = 0
        await real_sleep(delay)

    monkeypatch.setattr(asyncio, "sleep", aging)
    async with aiohttp.ClientSession() as session:
        assert await get(session, f"{server.url}/batches/{batch_id}") == 404
    assert server.retrieve_request_count == 1


def test_given_batches_never_vanish() -> None:
    """Batches given with a clock stay beneath the arrivals for good; old arrivals vanish."""
    given = synthetic_batches(20, seed=4)
    clock = ManualClock()
    server = FakeBatchesServer(given, clock=clock, arrival_every=600)
    clock.advance(30 * DAY)
    served = server.batches
    assert served[-20:] == given
    arrived = served[:-20]
    assert 0 < len(arrived) <= 2 * 7 * DAY // 600 + 1
    assert all(batch["created_at"] >= clock.now() - 7 * DAY for batch in arrived)


async def test_a_given_batch_outlives_an_arrival_with_its_id(make_server: MakeServer) -> None:
    """A given batch whose id an arrival repeats is still found after that arrival vanishes."""
    clock = ManualClock()
    first, *_ = timelines.Arrivals(seed=0, start=clock.start, every=600).until(clock.start + 900)
    given = {**synthetic_batches(1)[0], "id": first.id}
    server = await make_server([given], clock=clock, arrival_every=600)
    clock.advance(900)
    assert [batch["id"] for batch in server.batches[-2:]] == [first.id, first.id]
    clock.advance(8 * DAY)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/batches/{first.id}") as response,
    ):
        assert await response.json() == given
    served = server.batches
    assert [batch["id"] for batch in served].count(first.id) == 1
    assert served[-1] == given


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"retention": 0, "clock": ManualClock()}, "retention must be finite seconds > 0"),
        ({"retention": float("inf"), "clock": ManualClock()}, "retention must be finite"),
        ({"retention": DAY}, "retention needs a clock"),
    ],
    ids=["zero", "infinite", "without-clock"],
)
def test_bad_retention_is_refused(settings: dict[str, Any], match: str) -> None:
    """A retention not finite and positive, or with no clock to age by: ValueError."""
    with pytest.raises(ValueError, match=match):
        FakeBatchesServer(**settings)
