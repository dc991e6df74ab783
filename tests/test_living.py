"""A living FakeBatchesServer: batches move through their statuses on a clock, new ones arrive,
single batches are retrieved, and everything served stays schema-valid."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import jsonschema
import orjson
import pytest
from _helpers import API_KEY, AZURE_VERSION, MakeServer, ids
from test_contract import RELAXED, VALIDATOR

import aiobatches
from aiobatches._fake import timelines
from aiobatches._synthetic import EPOCH, MODELS_BY_ENDPOINT, NULL_MODEL_SHARE, synthetic_batches
from aiobatches.testing import AcceleratedClock, FakeBatchesServer, Fault, ManualClock

FINISHED: Final = frozenset({"completed", "failed", "expired", "cancelled"})
BATCH_VALIDATOR: Final = jsonschema.Draft202012Validator(
    {"$ref": "#/components/schemas/Batch", "components": RELAXED["components"]}
)
HOUR: Final = 3_600


def reachable(status: str) -> set[str]:
    """Every status a batch in `status` can reach by the allowed transitions."""
    seen: set[str] = set()
    todo = [status]
    while todo:
        for following in timelines.TRANSITIONS.get(todo.pop(), ()):
            if following not in seen:
                seen.add(following)
                todo.append(following)
    return seen


def watched_over(
    server: FakeBatchesServer, clock: ManualClock, steps: list[float]
) -> dict[str, list[Mapping[str, Any]]]:
    """Every batch's look after each step of the clock, by id (from when it first appears)."""
    looks: dict[str, list[Mapping[str, Any]]] = {}
    for step in [0.0, *steps]:
        clock.advance(step)
        for batch in server.batches:
            looks.setdefault(batch["id"], []).append(batch)
    return looks


def uneven_steps() -> list[float]:
    """Clock steps from a second to hours, covering two days: fine and coarse looks alike."""
    return [1.0, 7.5, 30.0, 59.0, 300.0, 900.0, 3 * HOUR, 10.0] * 8 + [HOUR] * 20


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at the synthetic epoch."""
    return ManualClock()


@pytest.fixture
async def living(make_server: MakeServer, clock: ManualClock) -> FakeBatchesServer:
    """A living server of 250 past batches and an arrival about every ten clock minutes."""
    return await make_server(count=250, seed=3, api_key=API_KEY, clock=clock, arrival_every=600)


def test_timelines_take_only_the_allowed_transitions() -> None:
    """Looked at every moment a status changes, each batch takes one allowed transition."""
    drawn = list(timelines.history(400, seed=5, before=EPOCH))
    arrivals = timelines.Arrivals(seed=5, start=EPOCH, every=300)
    drawn += arrivals.until(EPOCH + 2 * timelines.DAY)
    taken = set()
    for timeline in drawn:
        status = timeline.at(timeline.created_at)["status"]
        assert status == "validating"
        for when, _ in timeline.steps:
            assert timeline.at(when - 1)["status"] == status
            following = timeline.at(when)["status"]
            assert following in timelines.TRANSITIONS[status]
            taken.add((status, following))
            status = following
        assert status in FINISHED
    every = {(before, after) for before, nexts in timelines.TRANSITIONS.items() for after in nexts}
    assert taken == every


def test_statuses_only_move_forward(living: FakeBatchesServer, clock: ManualClock) -> None:
    """As the clock moves, each served batch's status only moves along allowed transitions."""
    looks = watched_over(living, clock, uneven_steps())
    changes = 0
    for history in looks.values():
        for before, after in itertools.pairwise(history):
            if before["status"] != after["status"]:
                changes += 1
                assert after["status"] in reachable(before["status"]), (before, after)
    assert changes > 50


def test_request_counts_grow_up_to_total(living: FakeBatchesServer, clock: ManualClock) -> None:
    """Completed and failed counts never decrease and never exceed the total."""
    looks = watched_over(living, clock, uneven_steps())
    grew = 0
    for history in looks.values():
        for before, after in itertools.pairwise(history):
            old, new = before["request_counts"], after["request_counts"]
            assert new["completed"] >= old["completed"]
            assert new["failed"] >= old["failed"]
            assert new["total"] >= old["total"]
            grew += new["completed"] > old["completed"]
        for look in history:
            counts = look["request_counts"]
            assert counts["completed"] + counts["failed"] <= counts["total"]
    assert grew > 100


def test_finished_batches_never_change_again(living: FakeBatchesServer, clock: ManualClock) -> None:
    """Once a batch is finished, every later look at it is the same, key for key."""
    looks = watched_over(living, clock, uneven_steps())
    finished_later = 0
    for history in looks.values():
        finished = [i for i, look in enumerate(history) if look["status"] in FINISHED]
        if finished:
            first = finished[0]
            assert all(look == history[first] for look in history[first:])
            finished_later += first > 0
    assert finished_later > 20


def test_finished_batches_carry_their_outcome(clock: ManualClock) -> None:
    """Finished batches look as real ones do: their timestamps, files, errors and usage."""
    server = FakeBatchesServer(count=400, seed=1, clock=clock)
    clock.advance(2 * timelines.DAY)
    batches = server.batches
    statuses = {batch["status"] for batch in batches}
    assert statuses == FINISHED
    for batch in batches:
        counts = batch["request_counts"]
        assert batch["expires_at"] == batch["created_at"] + timelines.DAY
        match batch["status"]:
            case "completed":
                assert batch["created_at"] < batch["in_progress_at"] < batch["finalizing_at"]
                assert batch["finalizing_at"] < batch["completed_at"]
                assert counts["completed"] + counts["failed"] == counts["total"] > 0
                assert (batch["output_file_id"] is None) == (counts["completed"] == 0)
                assert (batch["error_file_id"] is None) == (counts["failed"] == 0)
            case "failed":
                assert batch["failed_at"] > batch["created_at"]
                assert batch["in_progress_at"] is None
                assert counts == {"total": 0, "completed": 0, "failed": 0}
                assert batch["errors"]["data"]
                assert batch["output_file_id"] is None
            case "expired":
                assert batch["expired_at"] == batch["created_at"] + timelines.DAY
                done = counts["completed"] + counts["failed"]
                assert (batch["error_file_id"] is None) == (done == counts["total"])
            case "cancelled":
                assert batch["created_at"] < batch["cancelling_at"] < batch["cancelled_at"]
        if batch["status"] != "failed":
            assert batch["errors"] is None
    assert any(batch.get("usage") for batch in batches)
    assert any("usage" in batch and batch["usage"] is None for batch in batches)
    assert any("model" not in batch for batch in batches)


def test_each_batch_runs_a_model_its_endpoint_serves(living: FakeBatchesServer) -> None:
    """An embeddings batch runs an embedding model, a chat one a chat model; some send null."""
    models = [(batch["endpoint"], batch.get("model")) for batch in living.batches]
    assert all(model is None or model in MODELS_BY_ENDPOINT[e] for e, model in models)
    assert {e for e, model in models if model is not None} == set(MODELS_BY_ENDPOINT)
    assert any("model" in batch and batch["model"] is None for batch in living.batches)


def test_living_and_static_batches_follow_one_rule_for_files_and_models() -> None:
    """Living batches name their files and send null models as static ones do, in one share."""
    living = [
        timeline.at(timeline.settled_at)
        for timeline in timelines.history(4_000, seed=7, before=EPOCH)
    ]
    for batches in (living, synthetic_batches(4_000, seed=7)):
        files = [
            batch[key]
            for batch in batches
            for key in ("input_file_id", "output_file_id", "error_file_id")
            if batch[key] is not None
        ]
        assert all(re.fullmatch(r"file-[0-9A-Za-z]{22}", name) for name in files)
        letters = {char for name in files for char in name.removeprefix("file-")}
        assert letters > set("0123456789abcdef")  # letters and digits, not hex
        models = [(batch["endpoint"], batch["model"]) for batch in batches if "model" in batch]
        assert all(model is None or model in MODELS_BY_ENDPOINT[e] for e, model in models)
        nulls = sum(model is None for _, model in models) / len(models)
        assert NULL_MODEL_SHARE / 2 < nulls < NULL_MODEL_SHARE * 2


def test_history_is_mostly_finished(living: FakeBatchesServer) -> None:
    """The past batches are mostly finished at the clock's start; a realistic few are not."""
    unfinished = [batch for batch in living.batches if batch["status"] not in FINISHED]
    assert 3 <= len(unfinished) <= 250 // 5
    assert all(batch["created_at"] < EPOCH for batch in living.batches)


def test_a_demo_shows_progress_within_seconds() -> None:
    """At 60 times real speed, ten seconds show transitions, arrivals and request counts moving."""
    clock = ManualClock()
    server = FakeBatchesServer(count=250, clock=clock, arrival_every=90)
    seen = {batch["id"]: batch for batch in server.batches}
    transitions = arrivals = 0
    for _ in range(10):
        clock.advance(60)
        moved = 0
        for batch in server.batches:
            before = seen.get(batch["id"])
            if before is None:
                arrivals += 1
            else:
                transitions += before["status"] != batch["status"]
                moved += before["request_counts"] != batch["request_counts"]
            seen[batch["id"]] = batch
        assert moved > 0
    assert transitions >= 5
    assert arrivals >= 3


async def test_new_batches_appear_on_top(living: FakeBatchesServer, clock: ManualClock) -> None:
    """Arrivals are listed newest first above the batches seen before, created as they arrive."""
    async with aiobatches.Client(api_key=API_KEY, base_url=living.url) as client:
        before = await client.list_batches().to_list()
        for _ in range(12):
            clock.advance(300)
        after = await client.list_batches().to_list()
    arrived = after[: len(after) - len(before)]
    assert 3 <= len(arrived) <= 12
    assert ids(after[len(arrived) :]) == ids(before)
    everything = [batch.created_at for batch in after]
    assert everything == sorted(everything, reverse=True)
    created = [batch.created_at for batch in after[: len(arrived) + 1]]
    assert all(newer > older for newer, older in itertools.pairwise(created))
    assert before[0].created_at < arrived[-1].created_at <= arrived[0].created_at <= clock.now()


async def test_a_cursor_stays_valid_as_batches_arrive(
    living: FakeBatchesServer, clock: ManualClock
) -> None:
    """A listing resumed with `after` while batches arrive continues with no gap and no repeat."""
    everything = [batch["id"] for batch in living.batches]
    async with aiobatches.Client(api_key=API_KEY, base_url=living.url) as client:
        got: list[str] = []
        async with client.list_batches(limit=20, prefetch=0) as stream:
            async for batch in stream:
                got.append(batch.id)
                if len(got) % 20 == 0:
                    clock.advance(900)
    assert got == everything
    assert len(living.batches) > len(everything)


async def test_retrieval_matches_the_listing(living: FakeBatchesServer, clock: ManualClock) -> None:
    """At one time, each batch retrieved by id is the batch the listing shows."""
    clock.advance(1_234.5)
    async with aiobatches.Client(api_key=API_KEY, base_url=living.url) as client:
        listed = await client.list_batches().to_list()
        chosen = [b for b in listed if not b.is_finished][:5] + listed[-3:]
        retrieved = [await client.retrieve_batch(batch.id) for batch in chosen]
    assert retrieved == chosen
    assert len(living.retrieve_requests) == len(chosen)
    assert [request.path for request in living.retrieve_requests] == [
        f"/v1/batches/{batch.id}" for batch in chosen
    ]


async def test_unknown_id_is_not_found(living: FakeBatchesServer) -> None:
    """An unknown id is NotFoundError through a client, and an OpenAI-shaped 404 on the wire."""
    async with aiobatches.Client(api_key=API_KEY, base_url=living.url) as client:
        with pytest.raises(aiobatches.NotFoundError) as caught:
            await client.retrieve_batch("batch_nope")
    assert caught.value.request_id is not None
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session,
        session.get(f"{living.url}/batches/batch_nope") as response,
    ):
        assert response.status == 404
        assert response.headers["x-request-id"].startswith("req_")
        body = await response.json()
    assert body == {
        "error": {
            "message": "No batch found with id 'batch_nope'.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


async def test_retrieval_checks_the_key(living: FakeBatchesServer) -> None:
    """Retrieving with a wrong key is an AuthenticationError, as listing is."""
    batch_id = living.batches[0]["id"]
    async with aiobatches.Client(api_key="sk-wrong-key-000000", base_url=living.url) as client:
        with pytest.raises(aiobatches.AuthenticationError):
            await client.retrieve_batch(batch_id)
    assert len(living.retrieve_requests) == 1


async def test_faults_apply_to_list_requests_only(make_server: MakeServer) -> None:
    """A fault planned for page request 0 leaves retrievals alone and hits the first page."""
    server = await make_server(count=30, faults={0: Fault.respond(400)}, clock=ManualClock())
    batch_id = server.batches[3]["id"]
    async with aiobatches.Client(api_key="k", base_url=server.url, max_retries=0) as client:
        batch = await client.retrieve_batch(batch_id)
        with pytest.raises(aiobatches.BadRequestError):
            await client.list_batches().to_list()
        assert len(await client.list_batches().to_list()) == 30
    assert batch.id == batch_id
    assert len(server.retrieve_requests) == 1
    assert len(server.page_requests) == 2


async def test_poll_after_is_sent_when_set(make_server: MakeServer) -> None:
    """With poll_after_ms, list and retrieve answers carry openai-poll-after-ms; without, not."""
    server = await make_server(count=5, clock=ManualClock(), poll_after_ms=2_500)
    plain = await make_server(count=5)
    batch_id = server.batches[0]["id"]
    async with aiohttp.ClientSession() as session:
        for url in (f"{server.url}/batches", f"{server.url}/batches/{batch_id}"):
            async with session.get(url) as response:
                assert response.status == 200
                assert response.headers["openai-poll-after-ms"] == "2500"
        for url in (f"{plain.url}/batches", f"{plain.url}/batches/{plain.batches[0]['id']}"):
            async with session.get(url) as response:
                assert response.status == 200
                assert "openai-poll-after-ms" not in response.headers


async def test_wait_driven_by_the_clock(make_server: MakeServer, clock: ManualClock) -> None:
    """Under driving_sleeps a wait of hours returns at once, the clock moved by the delays."""
    server = await make_server(count=250, seed=3, clock=clock)
    pending = [batch["id"] for batch in server.batches if batch["status"] not in FINISHED][:4]
    assert len(pending) == 4
    start = clock.now()
    seen_before: list[tuple[float, float]] = []
    async with (
        aiobatches.Client(api_key="k", base_url=server.url) as client,
        asyncio.timeout(20),  # hang guard: the batches take hours of clock time
    ):
        with clock.driving_sleeps(lambda delay: seen_before.append((delay, clock.now()))) as delays:
            done = await client.wait_for_batches(pending, poll_interval=30)
    assert [batch.id for batch in done] == pending
    assert all(batch.is_finished for batch in done)
    assert clock.now() - start == sum(delays) > HOUR
    assert delays == [30] * len(delays)
    assert [delay for delay, _ in seen_before] == delays
    assert [at for _, at in seen_before] == [start + 30 * turn for turn in range(len(delays))]


async def test_wait_honours_poll_after_on_the_clock(make_server: MakeServer) -> None:
    """A living server's openai-poll-after-ms stretches the polls of a driven wait."""
    clock = ManualClock()
    server = await make_server(count=250, seed=3, clock=clock, poll_after_ms=120_000)
    pending = [batch["id"] for batch in server.batches if batch["status"] not in FINISHED][:2]
    async with aiobatches.Client(api_key="k", base_url=server.url) as client:
        with clock.driving_sleeps() as delays:
            await client.wait_for_batches(pending, poll_interval=30)
    assert delays
    assert set(delays) == {120}


async def test_watch_sees_batches_finish(living: FakeBatchesServer, clock: ManualClock) -> None:
    """A watch driven by the clock sees unfinished batches update until each has finished."""
    pending = [batch["id"] for batch in living.batches if batch["status"] not in FINISHED][:3]
    async with (
        aiobatches.Client(api_key=API_KEY, base_url=living.url) as client,
        asyncio.timeout(20),  # hang guard
    ):
        with clock.driving_sleeps():
            watch = client.watch_batches(poll_interval=60, ids=pending, until_finished=True)
            events = [event async for event in watch]
    assert {event.batch.id for event in events if event.kind == "existing"} == set(pending)
    assert {event.batch.id for event in events if event.finished} == set(pending)
    assert all(event.batch.is_finished for event in events if event.finished)
    assert any("request_counts" in event.changes for event in events)


async def test_accelerated_clock_moves_batches_in_real_time(make_server: MakeServer) -> None:
    """An accelerated clock runs ahead of real time, and its batches progress while one waits."""
    clock = AcceleratedClock(speed=50_000)
    server = await make_server(count=250, seed=3, clock=clock, arrival_every=600)
    first = clock.now()
    before = {batch["id"]: batch for batch in server.batches}
    await asyncio.sleep(0.3)
    assert clock.now() > first
    after = server.batches
    changed = {batch["id"] for batch in after if before.get(batch["id"], batch) != batch}
    assert changed
    assert all(before[batch_id]["status"] not in FINISHED for batch_id in changed)


def test_accelerated_clock_starts_where_asked() -> None:
    """An accelerated clock starts at `start`, and never runs backwards."""
    clock = AcceleratedClock(speed=3_600, start=1_000)
    first = clock.now()
    time.sleep(0.01)
    assert 1_000 <= first <= clock.now()
    assert clock.speed == 3_600


def test_clocks_say_where_they_are() -> None:
    """A clock's repr shows where it started, and a manual one where it is now."""
    clock = ManualClock(start=100)
    clock.advance(5)
    assert repr(clock) == "<ManualClock start=100.0 now=105.0>"
    assert repr(AcceleratedClock(speed=2, start=7)) == "AcceleratedClock(speed=2.0, start=7.0)"


@pytest.mark.parametrize(
    "make",
    [
        lambda: ManualClock().advance(-1),
        lambda: ManualClock(start=float("nan")),
        lambda: ManualClock().advance(float("inf")),
        lambda: AcceleratedClock(speed=0),
        lambda: AcceleratedClock(speed=float("inf")),
        lambda: FakeBatchesServer(clock=ManualClock(), arrival_every=-1),
        lambda: FakeBatchesServer(clock=ManualClock(), arrival_every=float("nan")),
        lambda: FakeBatchesServer(arrival_every=60),
    ],
    ids=[
        "backwards",
        "nan-start",
        "infinite-step",
        "speed-0",
        "speed-inf",
        "arrival-negative",
        "arrival-nan",
        "arrival-without-clock",
    ],
)
def test_bad_clock_settings_are_refused(make: Any) -> None:
    """A clock running backwards, a non-finite time, or arrivals with no clock: ValueError."""
    with pytest.raises(ValueError, match=r"speed|seconds|clock|start"):
        make()


def test_same_seed_same_life() -> None:
    """Same seed and clock start, same batches at every time, however late a server is made."""
    early, late = ManualClock(start=1_800_000_000), ManualClock(start=1_800_000_000)
    first = FakeBatchesServer(count=60, seed=9, clock=early, arrival_every=120)
    late.advance(3_000)
    second = FakeBatchesServer(count=60, seed=9, clock=late, arrival_every=120)
    early.advance(3_000)
    for step in (0, 45, 3_000, timelines.DAY):
        early.advance(step)
        late.advance(step)
        assert first.batches == second.batches
    other = FakeBatchesServer(count=60, seed=10, clock=ManualClock(start=1_800_000_000))
    assert not {b["id"] for b in other.batches} & {b["id"] for b in first.batches}


def test_a_jump_serves_what_small_steps_serve() -> None:
    """A clock jump of 100 days serves exactly what 200 steps of 12 hours serve: the same
    batches, those of the last week."""
    jumping, stepping = ManualClock(), ManualClock()
    jumped = FakeBatchesServer(count=60, seed=2, clock=jumping, arrival_every=HOUR)
    stepped = FakeBatchesServer(count=60, seed=2, clock=stepping, arrival_every=HOUR)
    for _ in range(200):
        stepping.advance(timelines.DAY / 2)
        assert stepped.batches  # a look after each step, so arrivals are drawn as they come
    jumping.advance(100 * timelines.DAY)
    served = jumped.batches
    assert served == stepped.batches
    assert all(batch["created_at"] >= jumping.now() - 7 * timelines.DAY for batch in served)
    assert len(served) > 7 * 24 // 2


async def test_given_batches_stay_beneath_the_arrivals(make_server: MakeServer) -> None:
    """With a clock, batches given as is are served unchanged beneath living arrivals."""
    given = FakeBatchesServer(count=20, seed=4).batches
    clock = ManualClock()
    server = await make_server(given, clock=clock, arrival_every=60, latency=0.001)
    clock.advance(600)
    served = server.batches
    assert served[-20:] == given
    assert len(served) > 20
    async with aiobatches.Client(api_key="k", base_url=server.url) as client:
        assert (await client.retrieve_batch(given[5]["id"])).id == given[5]["id"]


async def test_static_server_is_unchanged_and_retrieves(make_server: MakeServer) -> None:
    """Without a clock the batches are the list given, newest first, and each can be retrieved."""
    given = FakeBatchesServer(count=12, seed=2).batches
    server = await make_server(given)
    assert server.batches is not given
    assert server.batches == given
    assert server.batches is server.batches
    async with aiobatches.Client(api_key="k", base_url=server.url) as client:
        retrieved = await client.retrieve_batch(given[7]["id"])
        listed = await client.list_batches().to_list()
    assert retrieved == listed[7]


async def test_azure_mode_retrieves_with_the_api_version(make_server: MakeServer) -> None:
    """In Azure mode a batch is retrieved at /openai/batches/{id}, with the api-version."""
    clock = ManualClock()
    server = await make_server(
        count=10, api_key=API_KEY, azure=True, azure_api_version=AZURE_VERSION, clock=clock
    )
    batch_id = server.batches[2]["id"]
    async with aiobatches.AzureClient(
        azure_endpoint=server.url, api_version=AZURE_VERSION, api_key=API_KEY
    ) as client:
        batch = await client.retrieve_batch(batch_id)
    assert batch.id == batch_id
    [request] = server.retrieve_requests
    assert request.path == f"/openai/batches/{batch_id}"
    assert request.query == {"api-version": AZURE_VERSION}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/openai/batches/{batch_id}", headers={"api-key": API_KEY}) as no,
    ):
        assert no.status == 400


@pytest.mark.parametrize("seed", [0, 1, 3])
async def test_living_pages_and_batches_match_the_schema(
    make_server: MakeServer, seed: int
) -> None:
    """At many clock times, every page and every retrieved batch is schema-valid."""
    clock = ManualClock()
    server = await make_server(count=120, seed=seed, clock=clock, arrival_every=600)
    async with aiohttp.ClientSession() as session:
        for step in (0, 7, 95, 600, 2 * HOUR, 12 * HOUR, timelines.DAY, 3 * timelines.DAY):
            clock.advance(step)
            after: str | None = None
            while True:
                params = {"limit": "50", **({"after": after} if after else {})}
                async with session.get(f"{server.url}/batches", params=params) as response:
                    page = orjson.loads(await response.read())
                errors = [f"{list(e.path)}: {e.message}" for e in VALIDATOR.iter_errors(page)]
                assert not errors, errors[:5]
                for item in page["data"][:3]:
                    async with session.get(f"{server.url}/batches/{item['id']}") as response:
                        batch = orjson.loads(await response.read())
                    assert batch == item
                    assert not list(BATCH_VALIDATOR.iter_errors(batch))
                if not page["has_more"]:
                    break
                after = page["last_id"]
