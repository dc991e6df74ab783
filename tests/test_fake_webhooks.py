"""A living FakeBatchesServer pushes a signed webhook as each batch finishes: verifiable,
retried with backoff, faulted as a plan says (dropped, duplicated, stalled), cancelled at
closing, and bounded in what it holds."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Final

import orjson
import pytest
from aiohttp import web
from attrs import frozen
from multidict import CIMultiDict

import aiobatches
from aiobatches._fake import timelines
from aiobatches._synthetic import EPOCH
from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan, ManualClock

SECRET: Final = "whsec_" + "c2VjcmV0LWtleS1vZi10aGUtZmFrZS1zZXJ2ZXI="
"""A `whsec_` secret, as OpenAI's dashboard shows one."""
COUNT: Final = 10
"""Batches of the servers here: four of them (seed 0) finish after the clock's start."""
START: Final = math.floor(EPOCH)
WAIT: Final = 5.0
"""Real seconds a test waits for deliveries that should come within milliseconds."""
FINISHED_STAMPS: Final = ("completed_at", "failed_at", "expired_at", "cancelled_at")


@frozen(order=True)
class Finish:
    """A batch of the servers here finishing after the clock's start."""

    at: int
    batch_id: str
    status: str


def finishes(count: int = COUNT, seed: int = 0) -> list[Finish]:
    """The batches of `FakeBatchesServer(count=count, seed=seed, clock=ManualClock())` that
    finish after the clock's start, in the order they finish."""
    past = timelines.history(count, seed=seed, before=START)
    return sorted(
        Finish(timeline.settled_at, timeline.id, timeline.steps[-1][1])
        for timeline in past
        if timeline.settled_at > START
    )


@frozen
class Delivery:
    """One POST the receiver got."""

    headers: Mapping[str, str]
    body: bytes
    arrived: float
    """`time.monotonic()` when it arrived."""

    @property
    def event(self) -> aiobatches.WebhookEvent:
        """The delivery verified with the servers' secret."""
        return aiobatches.verify_webhook(self.body, self.headers, secret=SECRET)


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records each delivery and answers the statuses
    in `answers` first, then 200 (or holds each delivery until `release()`, while `hang`)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.answers: list[int] = []
        self.hang = False
        self.url = ""
        self._arrived = asyncio.Event()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> None:
        """Listen on `port` (0: any free one)."""
        app = web.Application()
        app.router.add_post("/webhooks", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        host, bound = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{bound}/webhooks"

    async def close(self) -> None:
        """Stop listening, letting go of the deliveries it holds."""
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.deliveries.append(Delivery(CIMultiDict(request.headers), body, time.monotonic()))
        self._arrived.set()
        if self.hang:
            await self._released.wait()
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    def release(self) -> None:
        """Answer the deliveries held, and hold no more."""
        self.hang = False
        self._released.set()

    async def wait_for(self, count: int) -> list[Delivery]:
        """The deliveries once `count` have arrived (a failure after `WAIT` seconds)."""
        async with asyncio.timeout(WAIT):
            while len(self.deliveries) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.deliveries


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running webhook receiver; closed at teardown."""
    receiving = Receiver()
    await receiving.start()
    try:
        yield receiving
    finally:
        await receiving.close()


@contextlib.asynccontextmanager
async def pushing(url: str, **options: Any) -> AsyncIterator[tuple[FakeBatchesServer, ManualClock]]:
    """A running living server of `COUNT` batches pushing webhooks to `url`, and its clock."""
    clock = ManualClock()
    defaults: dict[str, Any] = {"count": COUNT, "webhook_secret": SECRET, "webhook_backoff": 0.01}
    options = defaults | options
    async with FakeBatchesServer(clock=clock, webhook_url=url, **options) as server:
        yield server, clock


def finish(server: FakeBatchesServer, clock: ManualClock, last: Finish) -> None:
    """Advance `clock` to when `last` finishes, and let the server read it."""
    clock.advance(last.at - clock.now())
    assert server.batches  # read the clock now rather than at the next tick


async def settled(server: FakeBatchesServer) -> None:
    """Wait until no delivery waits; then a little longer, for any stray one to show."""
    async with asyncio.timeout(WAIT):
        while server.webhooks_waiting:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_finishing_batch_pushes_one_verified_event(receiver: Receiver) -> None:
    """A batch that finishes is pushed once, signed, as an OpenAI event of its status and id."""
    first = finishes()[0]
    async with pushing(receiver.url) as (server, clock):
        clock.advance(first.at - START - 1)
        assert server.batches
        await asyncio.sleep(0.2)
        assert receiver.deliveries == []
        finish(server, clock, first)
        [delivery] = await receiver.wait_for(1)
        await settled(server)
        assert len(receiver.deliveries) == 1
        assert (server.webhook_events, server.webhooks_delivered) == (1, 1)
    event = delivery.event
    assert (event.type, event.batch_id, event.created_at) == (
        f"batch.{first.status}",
        first.batch_id,
        first.at,
    )
    body = orjson.loads(delivery.body)
    assert body == {
        "id": event.id,
        "object": "event",
        "created_at": first.at,
        "type": f"batch.{first.status}",
        "data": {"id": first.batch_id},
    }
    assert event.id.startswith("evt_")
    assert delivery.headers["webhook-id"].startswith("wh_")
    assert delivery.headers["Content-Type"] == "application/json"
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60


async def test_every_batch_finished_between_readings_is_pushed_in_order(
    receiver: Receiver,
) -> None:
    """A clock jump past several finishes pushes each of them, in the order they finished."""
    expected = finishes()
    async with pushing(receiver.url) as (server, clock):
        finish(server, clock, expected[-1])
        deliveries = await receiver.wait_for(len(expected))
        await settled(server)
    events = [delivery.event for delivery in deliveries]
    assert [(event.batch_id, event.created_at) for event in events] == [
        (each.batch_id, each.at) for each in expected
    ]
    assert len({delivery.headers["webhook-id"] for delivery in deliveries}) == len(expected)
    assert len({event.id for event in events}) == len(expected)


async def test_finished_batches_are_pushed_without_a_request(receiver: Receiver) -> None:
    """The server reads its clock by itself, so a finish is pushed though nobody asks it."""
    first = finishes()[0]
    async with pushing(receiver.url) as (server, clock):
        clock.advance(first.at - START)
        [delivery] = await receiver.wait_for(1)
        assert server.request_count == 0
    assert delivery.event.batch_id == first.batch_id


async def test_every_finish_of_a_living_server_is_pushed_once(receiver: Receiver) -> None:
    """Over uneven clock steps with arrivals, exactly the batches that finished after the
    server was made are pushed, each once and in the order they finished, among them
    arrivals that finished between two readings, of every final status."""
    clock = ManualClock()
    async with FakeBatchesServer(
        count=60,
        seed=3,
        clock=clock,
        arrival_every=900,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
    ) as server:
        for step in [1.0, 400.0, 20_000.0, 3.0, 90_000.0, 7.0, 50_000.0]:
            clock.advance(step)
            assert server.batches
        finished = {
            batch["id"]: (batch["status"], stamp)
            for batch in server.batches
            for stamp in [max(batch[name] or 0 for name in FINISHED_STAMPS)]
            if stamp > START
        }
        deliveries = await receiver.wait_for(len(finished))
        await settled(server)
    events = [delivery.event for delivery in receiver.deliveries]
    assert len(events) == len(deliveries) == server.webhook_events
    order = [(event.created_at, event.batch_id) for event in events]
    assert order == sorted(order)
    pushed = {event.batch_id: (event.type, event.created_at) for event in events}
    assert pushed == {
        batch_id: (f"batch.{status}", stamp) for batch_id, (status, stamp) in finished.items()
    }
    assert {event.type for event in events} == {
        "batch.completed",
        "batch.failed",
        "batch.expired",
        "batch.cancelled",
    }


async def test_a_delivery_answered_500_is_retried_until_accepted(receiver: Receiver) -> None:
    """A 500 is retried with the same webhook-id, re-signed, until the receiver accepts it."""
    first = finishes()[0]
    receiver.answers = [500, 503]
    async with pushing(receiver.url) as (server, clock):
        finish(server, clock, first)
        deliveries = await receiver.wait_for(3)
        await settled(server)
        assert (server.webhooks_failed, server.webhooks_delivered) == (2, 1)
        assert server.webhooks_given_up == 0
    assert len(deliveries) == 3
    assert len({delivery.headers["webhook-id"] for delivery in deliveries}) == 1
    assert {delivery.event.batch_id for delivery in deliveries} == {first.batch_id}
    gaps = [later.arrived - earlier.arrived for earlier, later in itertools.pairwise(deliveries)]
    assert gaps[0] >= 0.01
    assert gaps[1] >= 0.02  # the backoff doubles


async def test_a_refused_connection_is_retried_until_the_receiver_listens() -> None:
    """Deliveries to a port nobody listens on are retried, and arrive once a receiver listens."""
    port = free_port()
    receiver = Receiver()
    first = finishes()[0]
    try:
        async with pushing(
            f"http://127.0.0.1:{port}/webhooks", webhook_attempts=100, webhook_backoff=0.02
        ) as (server, clock):
            finish(server, clock, first)
            async with asyncio.timeout(WAIT):
                while server.webhooks_failed < 2:
                    await asyncio.sleep(0.01)
            await receiver.start(port)
            [delivery] = await receiver.wait_for(1)
            await settled(server)
            assert server.webhooks_delivered == 1
    finally:
        await receiver.close()
    assert delivery.event.batch_id == first.batch_id


async def test_a_delivery_is_given_up_after_its_last_attempt(receiver: Receiver) -> None:
    """A receiver that always fails gets `webhook_attempts` tries, then the delivery is given up."""
    receiver.answers = [500] * 10
    async with pushing(receiver.url, webhook_attempts=3) as (server, clock):
        finish(server, clock, finishes()[0])
        await receiver.wait_for(3)
        await settled(server)
        assert (server.webhooks_failed, server.webhooks_given_up) == (3, 1)
        assert server.webhooks_delivered == 0
    assert len(receiver.deliveries) == 3


async def test_a_dropped_event_is_never_delivered(receiver: Receiver) -> None:
    """`Fault.drop()` loses its event for good; the others arrive."""
    expected = finishes()
    async with pushing(receiver.url, webhook_faults={1: Fault.drop()}) as (server, clock):
        finish(server, clock, expected[-1])
        deliveries = await receiver.wait_for(len(expected) - 1)
        await settled(server)
        assert server.webhooks_dropped == 1
        assert server.webhook_events == len(expected)
    assert len(receiver.deliveries) == len(expected) - 1
    assert [delivery.event.batch_id for delivery in deliveries] == [
        each.batch_id for each in expected if each != expected[1]
    ]


async def test_a_duplicated_event_arrives_twice_with_one_webhook_id(receiver: Receiver) -> None:
    """`Fault.duplicate()` delivers its event twice: the same body and `webhook-id`."""
    first = finishes()[0]
    async with pushing(receiver.url, webhook_faults={0: Fault.duplicate()}) as (server, clock):
        finish(server, clock, first)
        twice = await receiver.wait_for(2)
        await settled(server)
        assert server.webhooks_delivered == 2
    assert len(receiver.deliveries) == 2
    assert twice[0].headers["webhook-id"] == twice[1].headers["webhook-id"]
    assert twice[0].body == twice[1].body
    assert twice[0].event == twice[1].event


async def test_a_stalled_event_is_overtaken_by_a_later_one(receiver: Receiver) -> None:
    """`Fault.stall(seconds)` delivers its event that much later, after later events."""
    first, second = finishes()[:2]
    plan = FaultPlan(at={0: Fault.stall(0.3)})
    async with pushing(receiver.url, webhook_faults=plan) as (server, clock):
        finish(server, clock, second)
        deliveries = await receiver.wait_for(2)
    assert [delivery.event.batch_id for delivery in deliveries] == [
        second.batch_id,
        first.batch_id,
    ]
    assert deliveries[1].arrived - deliveries[0].arrived >= 0.2


async def test_faults_drawn_by_chance_replay_with_their_seed(receiver: Receiver) -> None:
    """A plan's `rate` and `pool` fault webhooks reproducibly: the same seed, the same fates."""
    plan = FaultPlan(rate=0.5, pool=(Fault.drop(), Fault.duplicate()), seed=3)
    runs: list[tuple[int, int, list[str | None]]] = []
    for _ in range(2):
        received = len(receiver.deliveries)
        async with pushing(receiver.url, webhook_faults=plan) as (server, clock):
            finish(server, clock, finishes()[-1])
            await settled(server)
        ids = [delivery.event.batch_id for delivery in receiver.deliveries[received:]]
        runs.append((server.webhooks_dropped, server.webhooks_delivered, ids))
    assert runs[0] == runs[1]
    dropped, delivered, _ = runs[0]
    assert dropped > 0
    assert delivered > len(finishes()) - dropped  # and some duplicated


async def test_closing_cancels_deliveries_waiting_and_under_way(receiver: Receiver) -> None:
    """Closing the server cancels a delivery the receiver holds and those stalled, at once,
    leaving no task or session behind (warnings are errors here)."""
    first, second = finishes()[:2]
    receiver.hang = True
    async with pushing(receiver.url, webhook_faults={1: Fault.stall(60)}) as (server, clock):
        finish(server, clock, second)
        await receiver.wait_for(1)
        assert server.webhooks_waiting == 2
        started = time.monotonic()
    assert time.monotonic() - started < 1
    assert receiver.deliveries[0].event.batch_id == first.batch_id
    assert server.webhooks_waiting == 0
    assert [task for task in asyncio.all_tasks() if task.get_name() == "fake webhooks"] == []
    assert server.webhooks_delivered == 0


async def test_a_restarted_server_pushes_what_finishes_after(receiver: Receiver) -> None:
    """Deliveries cancelled by closing stay cancelled when the server starts again; what
    finishes after is pushed."""
    first, second = finishes()[:2]
    async with pushing(receiver.url, webhook_faults={0: Fault.stall(0.2)}) as (server, clock):
        finish(server, clock, first)
        assert server.webhooks_waiting == 1
        await server.close()
        await server.start()
        finish(server, clock, second)
        [delivery] = await receiver.wait_for(1)
        await asyncio.sleep(0.3)
        await settled(server)
    assert delivery.event.batch_id == second.batch_id
    assert len(receiver.deliveries) == 1


async def test_closing_twice_and_a_server_without_webhooks_count_nothing() -> None:
    """A server with no `webhook_url` pushes nothing and counts nothing; closing is idempotent."""
    clock = ManualClock()
    server = FakeBatchesServer(count=COUNT, clock=clock)
    async with server:
        finish(server, clock, finishes()[-1])
    await server.close()
    counts = [
        server.webhook_events,
        server.webhooks_delivered,
        server.webhooks_failed,
        server.webhooks_given_up,
        server.webhooks_dropped,
        server.webhooks_overflowed,
        server.webhooks_waiting,
    ]
    assert counts == [0] * 7
    assert server.webhook_url is None


async def test_waiting_deliveries_are_bounded_by_the_backlog(receiver: Receiver) -> None:
    """Beyond `webhook_backlog` waiting deliveries the oldest are let go and counted, so a
    clock jump past thousands of finishes holds no more than the backlog."""
    clock = ManualClock()
    stalled = FaultPlan(rate=1.0, pool=(Fault.stall(60),))
    async with FakeBatchesServer(
        count=0,
        clock=clock,
        arrival_every=30,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        webhook_faults=stalled,
        webhook_backlog=50,
    ) as server:
        clock.advance(3 * timelines.DAY)
        assert server.batches
        events = server.webhook_events
        assert events > 5_000
        assert server.webhooks_waiting == 50
        assert server.webhooks_overflowed == events - 50
        assert len(server._pusher._due) <= 2 * 50 + 1  # type: ignore[union-attr]
    assert receiver.deliveries == []


async def test_the_oldest_waiting_delivery_is_the_one_let_go(receiver: Receiver) -> None:
    """With a backlog of one, a stalled delivery is let go when a later event comes."""
    second = finishes()[1]
    async with pushing(receiver.url, webhook_faults={0: Fault.stall(60)}, webhook_backlog=1) as (
        server,
        clock,
    ):
        finish(server, clock, second)
        [delivery] = await receiver.wait_for(1)
        await settled(server)
        assert server.webhooks_overflowed == 1
    assert delivery.event.batch_id == second.batch_id


@pytest.mark.parametrize("status", [200, 500])
async def test_a_delivery_let_go_while_under_way_is_not_retried(
    receiver: Receiver, status: int
) -> None:
    """A delivery let go for the backlog while the receiver holds it is never tried again,
    whatever its answer; the later one is delivered."""
    first, second = finishes()[:2]
    receiver.hang = True
    receiver.answers = [status]
    async with pushing(receiver.url, webhook_backlog=1) as (server, clock):
        finish(server, clock, first)
        await receiver.wait_for(1)
        finish(server, clock, second)
        assert server.webhooks_overflowed == 1
        receiver.release()
        deliveries = await receiver.wait_for(2)
        await settled(server)
        failed = int(status != 200)
        assert (server.webhooks_failed, server.webhooks_delivered) == (failed, 2 - failed)
    assert len(receiver.deliveries) == 2
    assert [delivery.event.batch_id for delivery in deliveries] == [
        first.batch_id,
        second.batch_id,
    ]


def refusals() -> Iterable[tuple[dict[str, Any], str]]:
    """Settings a server refuses, with what its message says."""
    url = "http://127.0.0.1:9/webhooks"
    living = {"clock": ManualClock()}
    yield {"webhook_url": url, "webhook_secret": SECRET}, "needs a clock"
    yield {"webhook_url": url, **living}, "needs a webhook_secret"
    yield {"webhook_url": url, "webhook_secret": "", **living}, "needs a webhook_secret"
    yield {"webhook_secret": SECRET, **living}, "need a webhook_url"
    yield {"webhook_faults": {0: Fault.drop()}, **living}, "need a webhook_url"
    yield {"webhook_url": "ftp://host/x", "webhook_secret": SECRET, **living}, "http or https"
    yield {"webhook_url": "/webhooks", "webhook_secret": SECRET, **living}, "http or https"
    yield {"webhook_url": url, "webhook_secret": "whsec_abc", **living}, "not valid base64"
    pushed = {"webhook_url": url, "webhook_secret": SECRET, **living}
    for name, value in [
        ("webhook_attempts", 0),
        ("webhook_attempts", True),
        ("webhook_attempts", 1.5),
        ("webhook_backlog", 0),
        ("webhook_backoff", -1.0),
        ("webhook_backoff", math.inf),
    ]:
        yield {**pushed, name: value}, name
    for fault in [Fault.respond(500), Fault.truncate(), Fault.cycle()]:
        yield {**pushed, "webhook_faults": {0: fault}}, "webhook_faults cannot hold"
        plan = FaultPlan(rate=0.5, pool=(Fault.drop(), fault))
        yield {**pushed, "webhook_faults": plan}, "webhook_faults cannot hold"
    yield {"faults": {0: Fault.duplicate()}}, "faults cannot hold a duplicate fault"


@pytest.mark.parametrize(("options", "message"), list(refusals()))
def test_bad_webhook_settings_are_refused(options: dict[str, Any], message: str) -> None:
    """Webhooks without a clock or a secret, a secret or faults without a URL, and settings out
    of range or faults a delivery cannot suffer are a ValueError saying which."""
    with pytest.raises(ValueError, match=message):
        FakeBatchesServer(count=COUNT, **options)


async def test_a_page_fault_plan_cannot_take_a_duplicate_later() -> None:
    """Assigning page faults that hold `Fault.duplicate()` is refused, keeping the old plan."""
    server = FakeBatchesServer(count=COUNT, faults={0: Fault.drop()})
    with pytest.raises(ValueError, match="duplicate"):
        server.faults = {1: Fault.duplicate()}
    assert server.faults == FaultPlan(at={0: Fault.drop()})
