"""Awaiting batches: retrieve, watch and wait, exact and at the cost of what changed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import attrs
import pytest
from _helpers import API_KEY, stream_tasks
from _scripted import (
    FINISHED,
    UNFINISHED,
    ScriptedServer,
    between_polls,
    make_batch,
    nothing,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiobatches
from aiobatches._converter import make_converter
from aiobatches.testing import FakeBatchesServer

CONVERTER = make_converter()


class StopWatchingError(Exception):
    """Ends a watch from inside its pause, once the test has seen enough cycles."""


def history(statuses: list[str]) -> list[dict[str, Any]]:
    """Batches newest first with these statuses, created ten seconds apart."""
    return [
        make_batch(index, status=status, created_at=1_000_000 - 10 * index)
        for index, status in enumerate(statuses)
    ]


def as_batch(item: dict[str, Any]) -> aiobatches.Batch:
    """The model of a served batch dict."""
    batch: aiobatches.Batch = CONVERTER.structure(item, aiobatches.Batch)
    return batch


def test_finished_statuses_are_the_four_final_ones() -> None:
    """completed, failed, expired and cancelled are finished; any other status, even new, is not."""
    assert {"completed", "failed", "expired", "cancelled"} == aiobatches.FINISHED_STATUSES
    for status in aiobatches.BatchStatus:
        batch = as_batch(make_batch(1, status=status.value, created_at=1))
        assert batch.is_finished == (status.value in FINISHED)
    assert not as_batch(make_batch(1, status="paused", created_at=1)).is_finished


async def test_retrieve_batch_returns_it_and_an_unknown_id_is_not_found() -> None:
    """retrieve_batch is GET /batches/{id}; an unknown id raises NotFoundError."""
    async with (
        ScriptedServer(history(["in_progress", "completed"])) as server,
        server.client() as client,
    ):
        batch = await client.retrieve_batch("batch_000001")
        with pytest.raises(aiobatches.NotFoundError):
            await client.retrieve_batch("batch_missing")
        with pytest.raises(ValueError, match="batch id"):
            await client.retrieve_batch("../batches")
    assert batch == as_batch(server.batches[1])
    assert server.retrievals == ["batch_000001", "batch_missing"]


@pytest.mark.parametrize("batch_id", [".", "..", "", "batch_1/.."])
async def test_retrieve_refuses_an_id_that_is_not_one_path_segment(
    server: FakeBatchesServer, batch_id: str
) -> None:
    """`.`, `..`, an empty id or one with `/` is a ValueError before any request."""
    async with aiobatches.Client(api_key=API_KEY, base_url=server.url) as client:
        with pytest.raises(ValueError, match="batch_id must be a batch id"):
            await client.retrieve_batch(batch_id)
    assert server.requests == []


@pytest.mark.parametrize("bad", [".", "..", "", "batch_1/.."])
async def test_wait_and_watch_check_each_id_before_any_request(bad: str) -> None:
    """wait_for_batches and watch_batches(ids=...) refuse an id as retrieve_batch does, at once."""
    async with (
        ScriptedServer(history(["in_progress", "completed"])) as server,
        server.client() as client,
    ):
        with pytest.raises(ValueError, match=r"batch_ids\[1\] must be a batch id"):
            await client.wait_for_batches(["batch_000000", bad])
        with pytest.raises(ValueError, match=r"ids\[1\] must be a batch id"):
            client.watch_batches(ids=iter(["batch_000001", bad]))
    assert server.lists == []
    assert server.retrievals == []


async def test_ids_given_as_an_iterator_are_all_watched() -> None:
    """An iterator of ids is watched as a list of them would be (checking does not use it up)."""
    async with ScriptedServer(history(["completed"] * 4)) as server, server.client() as client:
        watch = client.watch_batches(
            ids=iter(["batch_000001", "batch_000002"]), until_finished=True
        )
        events = [(event.kind, event.batch.id) async for event in watch]
    assert events == [("existing", "batch_000001"), ("existing", "batch_000002")]


async def test_first_look_reports_every_batch_once() -> None:
    """The first cycle yields an "existing" event per batch; until_finished ends it there."""
    async with ScriptedServer(history(["completed"] * 25)) as server, server.client() as client:
        watch = client.watch_batches(until_finished=True, limit=10)
        events = [event async for event in watch]
    assert [event.kind for event in events] == ["existing"] * 25
    assert [event.batch.id for event in events] == [batch["id"] for batch in server.batches]
    # "existing" reports what is, not a finish: starting a watch finishes nothing.
    assert all(event.batch.is_finished and not event.finished for event in events)
    assert len(server.lists) == 3


async def test_later_cycles_list_only_down_to_the_oldest_unfinished_batch() -> None:
    """After the first look, a cycle requests only the pages above the oldest unfinished batch."""
    statuses = ["in_progress", "validating", "in_progress"] + ["completed"] * 97
    async with ScriptedServer(history(statuses)) as server:
        lists_at: list[int] = []

        async def next_cycle(_: float) -> None:
            lists_at.append(len(server.lists))
            if len(lists_at) == 1:
                server.batches[1]["status"] = "failed"
                server.batches.insert(0, make_batch(500, status="validating", created_at=2_000_000))
            elif len(lists_at) == 3:
                raise StopWatchingError

        events: list[aiobatches.BatchEvent[aiobatches.Batch]] = []
        with between_polls(next_cycle), pytest.raises(StopWatchingError):
            async with server.client() as client:
                async for event in client.watch_batches(limit=10):
                    events.append(event)
    assert lists_at == [10, 11, 12]  # 10 pages at first, then one page per cycle
    later = [(event.kind, event.batch.id) for event in events[100:]]
    assert later == [("created", "batch_000500"), ("updated", "batch_000001")]
    updated = events[-1]
    assert updated.changes == ("status",)
    assert updated.previous is not None
    assert updated.previous.status == "validating"
    assert updated.finished


async def test_unchanged_batches_and_absent_versus_null_make_no_event() -> None:
    """A batch listed again as it was, or with a null key now absent, yields nothing."""
    async with ScriptedServer(history(["in_progress", "completed"])) as server:
        cycles = 0
        server.batches[0].update(model=None, usage=None)

        async def next_cycle(_: float) -> None:
            nonlocal cycles
            cycles += 1
            if cycles % 2:  # null, then absent, then null again
                del server.batches[0]["model"], server.batches[0]["usage"]
            else:
                server.batches[0].update(model=None, usage=None)
            if cycles == 3:
                raise StopWatchingError

        events: list[aiobatches.BatchEvent[aiobatches.Batch]] = []
        with between_polls(next_cycle), pytest.raises(StopWatchingError):
            async with server.client() as client:
                async for event in client.watch_batches():
                    events.append(event)
    assert [event.kind for event in events] == ["existing", "existing"]


async def test_since_is_the_first_looks_horizon() -> None:
    """`since` stops the first look at the first batch created before it."""
    async with ScriptedServer(history(["completed"] * 100)) as server:
        since = server.batches[14]["created_at"]
        async with server.client() as client:
            events = [
                e async for e in client.watch_batches(since=since, until_finished=True, limit=10)
            ]
    assert [event.batch.id for event in events] == [b["id"] for b in server.batches[:15]]
    assert len(server.lists) == 2


async def test_ids_are_watched_alone_until_finished() -> None:
    """With `ids`, only those batches make events, and until_finished ends when they are done."""
    statuses = ["in_progress"] * 10
    async with ScriptedServer(history(statuses)) as server:
        watched = ["batch_000003", "batch_000007"]

        async def next_cycle(_: float) -> None:
            for batch in server.batches:
                if batch["id"] in watched:
                    batch["status"] = "completed"

        with between_polls(next_cycle):
            async with server.client() as client:
                watch = client.watch_batches(ids=watched, until_finished=True)
                events = [(event.kind, event.batch.id) async for event in watch]
    assert events == [
        ("existing", "batch_000003"),
        ("existing", "batch_000007"),
        ("updated", "batch_000003"),
        ("updated", "batch_000007"),
    ]


async def test_a_watched_id_that_does_not_exist_ends_the_watch() -> None:
    """An id the listing never shows is retrieved, and its NotFoundError ends the watch."""
    async with (
        ScriptedServer(history(["in_progress"] * 3)) as server,
        server.client() as client,
    ):
        with pytest.raises(aiobatches.NotFoundError):
            async for _ in client.watch_batches(ids=["batch_000001", "batch_nope"]):
                pass


async def test_a_cycle_failing_transiently_is_logged_and_tried_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A retryable failure of a cycle logs a WARNING; the next cycle reports what changed."""
    async with ScriptedServer(history(["in_progress", "completed"])) as server:
        pauses = 0

        async def next_cycle(_: float) -> None:
            nonlocal pauses
            pauses += 1
            if pauses == 1:
                server.fail_lists = 1
            if pauses == 2:
                server.batches[0]["status"] = "completed"

        with caplog.at_level(logging.WARNING, "aiobatches"), between_polls(next_cycle) as delays:
            async with server.client() as client:
                watch = client.watch_batches(until_finished=True, poll_interval=7)
                kinds = [event.kind async for event in watch]
    assert kinds == ["existing", "existing", "updated"]
    assert delays == [7, 7]
    assert any("watch cycle failed" in record.getMessage() for record in caplog.records)


async def test_watch_honours_the_servers_poll_after() -> None:
    """A server's openai-poll-after-ms longer than the interval spaces the cycles."""
    async with ScriptedServer(history(["in_progress"])) as server:
        server.poll_after_ms = 40_000

        async def finish(_: float) -> None:
            server.batches[0]["status"] = "completed"

        with between_polls(finish) as delays:
            async with server.client() as client:
                async for _ in client.watch_batches(poll_interval=15, until_finished=True):
                    pass
    assert delays == [40.0]


STATUSES = st.sampled_from(FINISHED + UNFINISHED)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), limit=st.sampled_from([2, 5, 100]))
async def test_folded_events_equal_a_fresh_listing_after_every_cycle(
    data: st.DataObject, limit: int
) -> None:
    """Random timelines: after every cycle the state folded from events is the server's."""
    statuses = data.draw(st.lists(STATUSES, min_size=1, max_size=25), label="history")
    cycles = data.draw(st.integers(1, 6), label="cycles")
    folded: dict[str, aiobatches.Batch] = {}
    made = len(statuses)
    async with ScriptedServer(history(statuses)) as server:
        ended = 0

        async def next_cycle(_: float) -> None:
            nonlocal ended, made
            ended += 1
            assert folded == {b["id"]: as_batch(b) for b in server.batches}
            if ended > cycles:
                raise StopWatchingError
            for batch in server.batches:
                if batch["status"] in FINISHED or not data.draw(st.booleans(), label="moves"):
                    continue
                batch["status"] = data.draw(STATUSES, label="status")
                counts = batch["request_counts"]
                counts["completed"] = min(counts["total"], counts["completed"] + 7)
            for _ in range(data.draw(st.integers(0, 3), label="new batches")):
                newest = server.batches[0]["created_at"]
                status = data.draw(STATUSES, label="new status")
                server.batches.insert(0, make_batch(made, status=status, created_at=newest + 10))
                made += 1

        with between_polls(next_cycle), pytest.raises(StopWatchingError):
            async with server.client() as client:
                async for event in client.watch_batches(limit=limit):
                    batch = event.batch
                    if event.kind == "updated":
                        assert event.previous == folded[batch.id]
                        assert batch != event.previous  # never an event for an unchanged batch
                        differing = {
                            name
                            for name in attrs.fields_dict(aiobatches.Batch)
                            if getattr(batch, name) != getattr(event.previous, name)
                        }
                        assert set(event.changes) == differing
                    else:
                        assert batch.id not in folded
                    folded[batch.id] = batch


async def test_wait_returns_the_batches_in_the_order_given() -> None:
    """wait_for_batches returns each batch once finished, in the caller's order, repeats kept."""
    async with ScriptedServer(history(["in_progress", "validating", "completed"])) as server:
        polls = 0

        async def progress(_: float) -> None:
            nonlocal polls
            polls += 1
            server.batches[polls - 1]["status"] = "completed" if polls == 1 else "expired"

        ids = ["batch_000002", "batch_000000", "batch_000001", "batch_000000"]
        with between_polls(progress):
            async with server.client() as client:
                done = await client.wait_for_batches(ids, poll_interval=5)
    assert [batch.id for batch in done] == ids
    assert [batch.status for batch in done] == ["completed", "completed", "expired", "completed"]


async def test_each_wait_poll_costs_at_most_the_cheaper_way() -> None:
    """A poll costs at most min(unfinished ids, pages down to the oldest one) requests."""
    statuses = ["completed"] * 300
    for index in (0, 5, 150):
        statuses[index] = "in_progress"
    async with ScriptedServer(history(statuses)) as server:
        costs: list[int] = []
        seen = 0

        async def progress(_: float) -> None:
            nonlocal seen
            requests = len(server.lists) + len(server.retrievals)
            costs.append(requests - seen)
            seen = requests
            for batch in server.batches:
                if batch["status"] == "in_progress":
                    batch["status"] = "completed"
                    break

        ids = ["batch_000000", "batch_000005", "batch_000150"]
        with between_polls(progress):
            async with server.client() as client:
                await client.wait_for_batches(ids, poll_interval=1)
        costs.append(len(server.lists) + len(server.retrievals) - seen)
    # One batch finishes between polls, seen at the next look: the polls know of 3, 2, 2
    # and 1 unfinished ids, and the oldest lies on page 2 until the last poll.
    assert costs == [2, 2, 2, 1]


async def test_wait_on_recent_batches_relists_one_page() -> None:
    """Many ids near the top cost one page per poll, not one request per id."""
    statuses = ["in_progress"] * 50 + ["completed"] * 950
    async with ScriptedServer(history(statuses)) as server:
        polls = 0

        async def progress(_: float) -> None:
            nonlocal polls
            polls += 1
            for batch in server.batches[: 25 * polls]:
                batch["status"] = "completed"

        ids = [f"batch_{index:06d}" for index in range(50)]
        with between_polls(progress):
            async with server.client() as client:
                await client.wait_for_batches(ids, poll_interval=1)
    assert len(server.lists) == 3
    assert server.retrievals == []


async def test_wait_for_an_unknown_id_is_not_found_at_once() -> None:
    """An id that does not exist raises NotFoundError on the first poll."""
    async with ScriptedServer(history(["in_progress"] * 3)) as server:
        with between_polls(nothing) as delays:
            async with server.client() as client:
                with pytest.raises(aiobatches.NotFoundError):
                    await client.wait_for_batches(["batch_000001", "batch_missing"])
    assert delays == []


async def test_wait_times_out() -> None:
    """`timeout` seconds without every batch finished raise TimeoutError."""

    async def real_pause(_: float) -> None:
        await asyncio.sleep(0.02)

    async with ScriptedServer(history(["in_progress"])) as server:
        with between_polls(real_pause):
            async with server.client() as client:
                with pytest.raises(TimeoutError):
                    await client.wait_for_batches(["batch_000000"], timeout=0.1)


async def test_wait_honours_the_servers_poll_after() -> None:
    """Polls are spaced by the server's openai-poll-after-ms when it asks for longer."""
    async with ScriptedServer(history(["in_progress"])) as server:
        server.poll_after_ms = 45_000

        async def finish(_: float) -> None:
            server.batches[0]["status"] = "cancelled"

        with between_polls(finish) as delays:
            async with server.client() as client:
                (batch,) = await client.wait_for_batches(["batch_000000"], poll_interval=30)
    assert batch.status == "cancelled"
    assert delays == [45.0]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"poll_interval": -1}, ValueError),
        ({"poll_interval": float("nan")}, ValueError),
        ({"since": "yesterday"}, ValueError),
        ({"limit": 0}, ValueError),
        ({"ids": "batch_1"}, TypeError),
    ],
)
async def test_bad_watch_settings_fail_at_once(
    kwargs: dict[str, Any], error: type[Exception]
) -> None:
    """Bad watch settings raise before any request."""
    async with ScriptedServer(history(["completed"])) as server, server.client() as client:
        with pytest.raises(error):
            client.watch_batches(**kwargs)
    assert server.lists == []


async def test_breaking_out_of_a_watch_mid_cycle_leaves_nothing_running() -> None:
    """Leaving a watch halfway through a cycle closes its listing; no task or request remains."""
    async with ScriptedServer(history(["in_progress"] * 30)) as server, server.client() as client:
        async with client.watch_batches(limit=5) as watch:
            async for event in watch:
                assert event.kind == "existing"
                break
        assert stream_tasks() == []
        assert len(server.lists) == 1
