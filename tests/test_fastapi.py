"""The docs' FastAPI recipe, run as written on uvicorn: NDJSON, SSE, webhooks, hang-ups, load,
shutdown."""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import fastapi.routing
import orjson
import pytest
import uvicorn
from _helpers import (
    API_KEY,
    MakeServer,
    aim_recipe_at,
    eventually,
    served_ids,
    stream_tasks,
    web_recipe,
)
from _scripted import between_polls

import aiobatches
from aiobatches.testing import (
    FakeBatchesServer,
    Fault,
    ManualClock,
    sign_webhook,
    synthetic_batches,
)

FASTAPI_RECIPE = "# recipe: FastAPI NDJSON and SSE"
LATENCY = 0.1
"""Seconds the upstream takes per page where a test hangs up mid-stream."""
WEBHOOK_SECRET = "whsec_dGhlIEZhc3RBUEkgcmVjaXBlJ3Mgc2lnbmluZyBzZWNyZXQ="
"""The signing secret the recipe finds in OPENAI_WEBHOOK_SECRET."""


class App:
    """The recipe's app on a real uvicorn server on 127.0.0.1, run as a task of the test's loop."""

    def __init__(self, **settings: Any) -> None:
        config = uvicorn.Config(
            web_recipe(FASTAPI_RECIPE).app,
            host="127.0.0.1",
            port=0,
            lifespan="on",
            log_level="warning",
            **settings,
        )
        self.server = uvicorn.Server(config)
        self.url = ""
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> App:
        self._task = asyncio.create_task(self.server.serve())
        assert await eventually(lambda: self.server.started or self._done())
        assert self.server.started, "uvicorn did not start"
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task

    def _done(self) -> bool:
        return self._task is not None and self._task.done()

    @property
    def client(self) -> aiobatches.Client:
        """The recipe's client, as its lifespan put it in the state."""
        client: aiobatches.Client = self.server.lifespan.state["batches"]
        return client

    @property
    def feed(self) -> Any:
        """The recipe's feed of its one watch, as its lifespan put it in the state."""
        return self.server.lifespan.state["feed"]

    @property
    def requests_running(self) -> int:
        """Requests uvicorn is still answering: a hung-up one ends once the app has let go."""
        return len(self.server.server_state.tasks)


@pytest.fixture
async def app(upstream: FakeBatchesServer) -> AsyncIterator[App]:
    """The recipe's app, served for the test once its watch has made its first look (then it
    rests for 600 s), and shut down after it."""
    async with App() as running:
        assert await eventually(lambda: len(upstream.page_requests) == first_look(upstream))
        yield running


def first_look(upstream: FakeBatchesServer) -> int:
    """The page requests of a watch's first look at the upstream."""
    return -(-len(upstream.batches) // 100)


@contextmanager
def held_first_look(
    upstream: FakeBatchesServer,
    release: asyncio.Event,
    then: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Iterator[None]:
    """Within the block, an app's watch starts its first look only once `release` is set, so
    that a test's subscribers see it from its start: its first page request is refused with a
    503, whose retry pause lasts until then. Later pauses run `then(delay)`."""

    async def pause(delay: float) -> None:
        if release.is_set():
            await then(delay)
        else:
            await release.wait()

    upstream.faults = {len(upstream.page_requests): Fault.respond(503)}
    with between_polls(pause):
        yield


async def read_event(content: aiohttp.StreamReader) -> dict[str, str]:
    """The next block of a Server-Sent Events stream: an event's fields, or a comment."""
    fields: dict[str, str] = {}
    while True:
        line = (await content.readline()).decode()
        assert line, "the event stream ended"
        line = line.rstrip("\n")
        if not line:
            if fields:
                return fields
            continue
        name, _, value = line.partition(": ")
        fields[name or "comment"] = value


async def next_event(content: aiohttp.StreamReader) -> dict[str, str]:
    """The next Server-Sent Event, past any keep-alive comment."""
    while "comment" in (block := await read_event(content)):
        pass
    return block


async def read_directly(upstream: FakeBatchesServer) -> list[dict[str, Any]]:
    """Every upstream batch as aiobatches reads it, in the recipe's JSON."""
    async with aiobatches.Client(api_key=API_KEY, base_url=upstream.url) as direct:
        batches = await direct.list_batches().to_list()
    return [json.loads(orjson.dumps(attrs.asdict(batch))) for batch in batches]


async def test_ndjson_streams_every_batch_newest_first(
    upstream: FakeBatchesServer, app: App
) -> None:
    """GET /batches returns every upstream batch, newest first, as aiobatches reads it; `after`
    resumes and a bad `max_items` is refused."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{app.url}/batches") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/x-ndjson"
            got = [json.loads(line) for line in (await response.text()).splitlines()]
        after = upstream.batches[899]["id"]
        params = {"after": after, "max_items": "60"}
        async with session.get(f"{app.url}/batches", params=params) as response:
            rest = [json.loads(line)["id"] for line in (await response.text()).splitlines()]
        async with session.get(f"{app.url}/batches", params={"max_items": "0"}) as response:
            refused = response.status
    assert [batch["id"] for batch in got] == served_ids(upstream)
    assert got == await read_directly(upstream)
    assert rest == served_ids(upstream)[900:960]
    assert refused == 422


async def test_sse_forwards_the_first_look_then_changes(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /batches/events sends the app's watch's first look as `existing` to a subscriber
    there from its start, then what the living upstream's clock changes as `created` and
    `updated`, each naming exactly what changed."""
    clock = ManualClock()
    upstream = await make_server(count=60, api_key=API_KEY, clock=clock, arrival_every=600)
    aim_recipe_at(upstream, monkeypatch)
    monkeypatch.setenv("BATCHES_POLL_INTERVAL", "60")
    start = await read_directly(upstream)  # the clock moves only in the watch's pauses
    pauses: list[float] = []
    subscribed, seen_enough, resting = asyncio.Event(), asyncio.Event(), asyncio.Event()
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.05)  # FastAPI's test hook

    async def tick(delay: float) -> None:
        """A watch pause moves the clock on at once, until the test has seen enough: then the
        watch rests, and the caller hangs up on a quiet stream, as a dashboard mostly does."""
        if seen_enough.is_set():
            resting.set()
            await asyncio.Event().wait()
        pauses.append(delay)
        clock.advance(delay)
        await asyncio.sleep(0)

    # The app's tasks inherit the pauses: uvicorn's task is started within the block.
    with held_first_look(upstream, subscribed, then=tick):
        async with (
            App() as app,
            aiohttp.ClientSession() as session,
            asyncio.timeout(60),
            session.get(f"{app.url}/batches/events") as response,
        ):
            subscribed.set()
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = [await next_event(response.content) for _ in start]
            while not {"created", "updated"} <= {event["event"] for event in events}:
                events.append(await next_event(response.content))
            seen_enough.set()
            await resting.wait()
            while (await read_event(response.content)) != {"comment": "ping"}:
                pass  # the quiet watch's keep-alive: every event before it was delivered
    assert [event["id"] for event in events] == [str(n) for n in range(1, len(events) + 1)]
    first_look = events[: len(start)]
    assert {event["event"] for event in first_look} == {"existing"}
    looks = [json.loads(event["data"]) for event in first_look]
    assert [look["batch"] for look in looks] == start
    for look in looks:
        assert look["changes"] == []
        assert look["finished"] is False  # what already is, not a finish
    seen = {look["batch"]["id"]: look["batch"] for look in looks}
    for event in events[len(start) :]:
        data = json.loads(event["data"])
        batch, before = data["batch"], seen.get(data["batch"]["id"])
        if before is None:
            assert (event["event"], data["changes"]) == ("created", [])
        else:
            assert event["event"] == "updated"
            differ = {key for key in {*before, *batch} if before.get(key) != batch.get(key)}
            assert set(data["changes"]) == differ != set()
        ends = before is None or before["status"] not in aiobatches.FINISHED_STATUSES
        assert data["finished"] == (batch["status"] in aiobatches.FINISHED_STATUSES and ends)
        seen[batch["id"]] = batch
    assert set(pauses) == {60.0}


def finished(batch_id: str) -> bytes:
    """The body of OpenAI's webhook telling that a batch completed."""
    event = {
        "id": f"evt_{batch_id.removeprefix('batch_')}",
        "object": "event",
        "type": "batch.completed",
        "created_at": int(time.time()),
        "data": {"id": batch_id},
    }
    return json.dumps(event).encode()


async def test_a_signed_webhook_brings_the_batch_to_every_event_stream_at_once(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signed delivery to POST /webhooks/openai makes every open event stream report the
    notified batch's change at once, by one retrieval, though the app's watch would not list
    again for an hour."""
    clock = ManualClock()
    upstream = await make_server(count=30, api_key=API_KEY, clock=clock)
    aim_recipe_at(upstream, monkeypatch)
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("BATCHES_POLL_INTERVAL", "3600")
    start = await read_directly(upstream)
    subscribed = asyncio.Event()
    with held_first_look(upstream, subscribed):
        async with App() as app, aiohttp.ClientSession() as session, asyncio.timeout(30):
            streams = [await session.get(f"{app.url}/batches/events") for _ in "ab"]
            subscribed.set()
            for stream in streams:
                for _ in start:
                    assert (await next_event(stream.content))["event"] == "existing"
            clock.advance(3600)  # the batches move on while the watch rests
            now = {batch["id"]: batch for batch in await read_directly(upstream)}
            changed = next(
                batch["id"]
                for batch in start
                if batch["status"] not in aiobatches.FINISHED_STATUSES and now[batch["id"]] != batch
            )
            listed, retrieved = len(upstream.page_requests), len(upstream.retrieve_requests)
            body = finished(changed)
            headers = sign_webhook(body, WEBHOOK_SECRET)
            async with asyncio.timeout(5):  # the watch's pause: 3600 s
                url = f"{app.url}/webhooks/openai"
                async with session.post(url, data=body, headers=headers) as response:
                    answer = response.status, await response.read()
                events = [await next_event(stream.content) for stream in streams]
            for stream in streams:
                stream.close()
    assert answer == (204, b"")
    for event in events:
        data = json.loads(event["data"])
        assert event["event"] == "updated"
        assert data["batch"] == now[changed]
        assert data["changes"] != []
    assert len(upstream.page_requests) == listed  # no cycle ran: the webhook alone explains it
    assert len(upstream.retrieve_requests) == retrieved + 1


async def test_a_webhook_that_fails_verification_is_a_bare_400_and_wakes_nothing(
    upstream: FakeBatchesServer, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unsigned delivery, one signed with another secret and one whose body was altered are
    each a 400 that says no more, and the app's watch retrieves nothing."""
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", WEBHOOK_SECRET)
    batch_id = next(
        batch["id"]
        for batch in upstream.batches
        if batch["status"] not in aiobatches.FINISHED_STATUSES
    )
    body = finished(batch_id)
    other = "whsec_" + base64.b64encode(b"another secret entirely").decode()
    deliveries = [
        (body, {"content-type": "application/json"}),
        (body, sign_webhook(body, other)),
        (body.replace(b"completed", b"cancelled"), sign_webhook(body, WEBHOOK_SECRET)),
    ]
    async with aiohttp.ClientSession() as session:
        answers = []
        for data, headers in deliveries:
            url = f"{app.url}/webhooks/openai"
            async with session.post(url, data=data, headers=headers) as response:
                answers.append((response.status, await response.json()))
        await asyncio.sleep(0.2)  # time for a woken watch to retrieve
        body, headers = finished(batch_id), sign_webhook(finished(batch_id), WEBHOOK_SECRET)
        async with session.post(f"{app.url}/webhooks/openai", data=body, headers=headers) as r:
            signed = r.status
        assert await eventually(lambda: len(upstream.retrieve_requests) == 1)
    assert answers == [(400, {"detail": "Bad Request"})] * len(deliveries)
    assert signed == 204  # the same delivery signed: the watch retrieves the batch


async def test_a_restart_resumes_from_the_saved_checkpoint(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The app saves its watch's checkpoint; restarted on it, the app sends no flood of
    `existing`, but each batch that changed while it was down, once, as `updated`."""
    clock = ManualClock()
    upstream = await make_server(count=30, api_key=API_KEY, clock=clock)
    aim_recipe_at(upstream, monkeypatch)
    saved = tmp_path / "batches-watch.json"
    monkeypatch.setenv("BATCHES_CHECKPOINT", str(saved))
    monkeypatch.setenv("BATCHES_POLL_INTERVAL", "3600")
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.05)  # FastAPI's test hook
    start = await read_directly(upstream)
    first, second = asyncio.Event(), asyncio.Event()
    async with aiohttp.ClientSession() as session, asyncio.timeout(30):
        with held_first_look(upstream, first):
            async with App() as app:
                response = await session.get(f"{app.url}/batches/events")
                first.set()
                looks = [await next_event(response.content) for _ in start]
                response.close()
        assert {look["event"] for look in looks} == {"existing"}
        assert saved.exists()
        clock.advance(3600)  # the batches move on while the app is down
        now = {batch["id"]: batch for batch in await read_directly(upstream)}
        changed = [batch["id"] for batch in start if now[batch["id"]] != batch]
        with held_first_look(upstream, second):
            async with App() as app:
                response = await session.get(f"{app.url}/batches/events")
                second.set()
                events = [await next_event(response.content) for _ in changed]
                while (await read_event(response.content)) != {"comment": "ping"}:
                    pass  # the watch rests: every event before it was delivered
                response.close()
    assert changed != []
    assert [event["event"] for event in events] == ["updated"] * len(changed)
    got = {json.loads(event["data"])["batch"]["id"]: event for event in events}
    assert set(got) == set(changed)
    for batch_id, event in got.items():
        assert json.loads(event["data"])["batch"] == now[batch_id]


async def test_upstream_refusals_become_the_responses_status(
    upstream: FakeBatchesServer, app: App
) -> None:
    """An unknown `after` is the caller's 400, with the upstream's reason; an upstream that
    refuses the app is a 502; no caller can make the app's one watch poll."""
    looked = first_look(upstream)
    upstream.faults = {looked + 1: Fault.respond(403)}  # the callers' second request: the 502
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{app.url}/batches", params={"after": "batch_unknown"}) as r:
            unknown = r.status, (await r.json())["detail"]
        async with session.get(f"{app.url}/batches") as response:
            refused = response.status
        params = {"poll_interval": "0"}
        async with session.get(f"{app.url}/batches/events", params=params) as response:
            subscribed = response.status
            await asyncio.sleep(0.2)  # time for a watch that obeyed the caller to poll
    assert unknown[0] == 400
    assert "batch_unknown" in unknown[1]
    assert refused == 502
    assert subscribed == 200
    assert len(upstream.page_requests) == looked + 2


async def test_a_failure_part_way_ends_the_body_with_where_to_resume(
    upstream: FakeBatchesServer, app: App
) -> None:
    """An upstream failure after the first page ends the body with an `error` line whose
    `after` resumes the listing with no gap and no repeat."""
    upstream.faults = {first_look(upstream) + 1: Fault.respond(403)}  # the second page
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{app.url}/batches") as response:
            status = response.status
            *lines, last = [json.loads(line) for line in (await response.text()).splitlines()]
        params = {"after": last["after"]}
        async with session.get(f"{app.url}/batches", params=params) as response:
            rest = [json.loads(line) for line in (await response.text()).splitlines()]
    assert status == 200
    assert "403" in last["error"]
    assert [batch["id"] for batch in lines + rest] == served_ids(upstream)


async def test_a_watch_that_gives_up_sends_an_error_event_and_ends(
    upstream: FakeBatchesServer,
) -> None:
    """The app's watch ended by an upstream refusal tells each event stream why, then ends it:
    those open when it gave up, and those opened later."""
    subscribed = asyncio.Event()
    with held_first_look(upstream, subscribed):
        # The first request's retry is held until a caller is there; the retry is refused.
        upstream.faults = {0: Fault.respond(503), 1: Fault.respond(403)}
        async with App() as app, aiohttp.ClientSession() as session:
            before = await session.get(f"{app.url}/batches/events")
            subscribed.set()
            assert await eventually(lambda: app.feed.ended)
            after = await session.get(f"{app.url}/batches/events")
            for response in (before, after):
                event = await next_event(response.content)
                assert await response.content.read() == b""
                assert event["event"] == "error"
                assert "403" in json.loads(event["data"])["error"]
                response.close()


async def test_counts_beyond_64_bits_reach_the_caller_exactly(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A count too large for orjson reaches NDJSON and SSE callers exactly, not a broken stream."""
    batches = synthetic_batches(3, seed=7)
    huge = 2**70 + 1
    batches[1] = {**batches[1], "request_counts": {"total": huge, "completed": huge, "failed": 0}}
    upstream = await make_server(batches=batches, api_key=API_KEY)
    aim_recipe_at(upstream, monkeypatch)
    subscribed = asyncio.Event()
    with held_first_look(upstream, subscribed):
        async with App() as app, aiohttp.ClientSession() as session:
            async with session.get(f"{app.url}/batches/events") as response:
                subscribed.set()
                looks = [json.loads((await next_event(response.content))["data"]) for _ in batches]
            async with session.get(f"{app.url}/batches") as response:
                listed = [json.loads(line) for line in (await response.text()).splitlines()]
    for got in (listed, [look["batch"] for look in looks]):
        assert [batch["id"] for batch in got] == [batch["id"] for batch in batches]
        assert got[1]["request_counts"] == {"total": huge, "completed": huge, "failed": 0}


async def test_hanging_up_on_ndjson_stops_the_upstream_paging(
    upstream: FakeBatchesServer, app: App
) -> None:
    """A caller who hangs up mid-stream costs no upstream page request once the app has seen it:
    the stream is closed by then, part way through the listing."""
    upstream.latency = LATENCY
    pages = -(-len(upstream.batches) // 100)
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"{app.url}/batches")
        first = await response.content.readline()
        assert json.loads(first)["id"] == upstream.batches[0]["id"]
        response.close()  # hang up mid-stream
    at_hang_up = len(upstream.page_requests)
    assert await eventually(lambda: app.requests_running == 0)
    # Closed before the request ended, not left to the collector (the app's watch rests on).
    assert [task for task in stream_tasks() if "watch" not in task.get_name()] == []
    at_seen = len(upstream.page_requests)
    await asyncio.sleep(5 * LATENCY)  # five pages' time for a leaked stream to show itself
    after = len(upstream.page_requests)
    print(f"ndjson hang-up: requests {at_hang_up} at it, {at_seen} when seen, {after} later")
    assert after == at_seen < first_look(upstream) + pages


async def test_hanging_up_on_sse_lets_go_of_the_caller(
    upstream: FakeBatchesServer, app: App
) -> None:
    """A caller who hangs up on the event stream is let go of: the app's feed holds nothing for
    it once the request is done, and the app's one watch goes on for the others."""
    async with aiohttp.ClientSession() as session:
        responses = [await session.get(f"{app.url}/batches/events") for _ in range(3)]
        assert await eventually(lambda: len(app.feed.subscribers) == 3)
        responses[0].close()
        responses[1].close()
        assert await eventually(lambda: app.requests_running == 1)
        assert len(app.feed.subscribers) == 1
        responses[2].close()
        assert await eventually(lambda: app.requests_running == 0)
    assert app.feed.subscribers == set()
    assert not app.feed.ended


async def test_a_caller_too_far_behind_is_let_go_with_its_stream_ended(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that falls the backlog's length behind is let go of: its queue holds the events
    it had, then the end of its stream, while a caller that keeps up gets every event."""
    upstream = await make_server(count=1500, api_key=API_KEY)
    aim_recipe_at(upstream, monkeypatch)
    subscribed = asyncio.Event()
    with held_first_look(upstream, subscribed):
        async with App() as app, asyncio.timeout(30):
            backlog = web_recipe(FASTAPI_RECIPE).BACKLOG
            slow, fast = app.feed.subscribe(), app.feed.subscribe()
            subscribed.set()
            got = [await fast.get() for _ in upstream.batches]
            assert await eventually(lambda: len(upstream.page_requests) == 1 + first_look(upstream))
            kept = [slow.get_nowait() for _ in range(slow.qsize())]
            assert app.feed.subscribers == {fast}
    assert [event.batch.id for event in got] == served_ids(upstream)
    assert kept[-1] is None
    assert [event.batch.id for event in kept[:-1]] == served_ids(upstream)[:backlog]


async def test_one_client_serves_200_concurrent_callers(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 concurrent callers each get exactly their batches through the app's one client,
    whose upstream connections stay within its connection limit."""
    upstream = await make_server(count=400, api_key=API_KEY, latency=0.005)
    aim_recipe_at(upstream, monkeypatch)
    all_ids = served_ids(upstream)
    limit = inspect.signature(aiobatches.Client).parameters["connection_limit"].default
    rng = random.Random(2026)

    async def one(session: aiohttp.ClientSession, url: str) -> int:
        start = rng.randrange(len(all_ids))
        max_items = rng.choice([None, rng.randint(1, 300)])
        params = {} if start == 0 else {"after": all_ids[start - 1]}
        if max_items is not None:
            params["max_items"] = str(max_items)
        async with session.get(f"{url}/batches", params=params) as response:
            got = [json.loads(line)["id"] for line in (await response.text()).splitlines()]
        assert got == all_ids[start:][:max_items]
        return len(got)

    connector = aiohttp.TCPConnector(limit=200)
    async with App() as app, aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        counts = await asyncio.gather(*(one(session, app.url) for _ in range(200)))
        wall = time.perf_counter() - started
    print(
        f"200 callers: {sum(counts)} batches, {len(upstream.page_requests)} page requests, "
        f"peak {upstream.peak_connections} upstream connections (limit {limit}), {wall:.2f} s"
    )
    assert 1 <= upstream.peak_connections <= limit
    assert sum(counts) > 10_000


async def test_shutdown_leaves_nothing_running(upstream: FakeBatchesServer) -> None:
    """Once uvicorn has shut down, the lifespan closed the client and its connections, and no
    task but the test's own is left."""
    upstream.latency = 0.01
    async with App() as app, aiohttp.ClientSession() as session:
        async with session.get(f"{app.url}/batches", params={"max_items": "250"}) as response:
            assert len((await response.text()).splitlines()) == 250
        response = await session.get(f"{app.url}/batches")
        await response.content.readline()
        response.close()  # one caller hangs up mid-stream before the shutdown
        client = app.client
    assert await eventually(lambda: upstream.open_connections == 0)
    with pytest.raises(RuntimeError, match="closed"):
        client.list_batches()
    assert await eventually(lambda: others() == [])


async def test_shutdown_with_an_open_event_stream_leaves_nothing_running(
    upstream: FakeBatchesServer,
) -> None:
    """An event stream never ends by itself: with a graceful-shutdown bound, uvicorn cancels
    it, the watch closes, and the lifespan closes the client; nothing is left running."""
    subscribed = asyncio.Event()
    with held_first_look(upstream, subscribed):
        async with aiohttp.ClientSession() as session:
            async with App(timeout_graceful_shutdown=1) as app:
                response = await session.get(f"{app.url}/batches/events")
                subscribed.set()
                for _ in upstream.batches:
                    assert (await next_event(response.content))["event"] == "existing"
                client = app.client
            with pytest.raises(aiohttp.ClientPayloadError):  # uvicorn returned: the stream cut
                await response.content.read()
            response.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.list_batches()
    assert await eventually(lambda: upstream.open_connections == 0)
    assert await eventually(lambda: others() == [])


def others() -> list[asyncio.Task[Any]]:
    """The tasks of this loop other than the running one."""
    return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
