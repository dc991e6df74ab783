"""Woken by news: `watch.notify(batch_id)` ends a rest at once to retrieve that batch,
coalescing repeats and ignoring strays, while cycles still reconcile what news missed."""

from __future__ import annotations

import asyncio

import pytest
from _scripted import ScriptedServer, batch, between_polls

import aiobatches
from aiobatches import _wakeups

HOUR = 3600.0


async def next_event(
    watch: aiobatches.BatchWatch[aiobatches.Batch],
) -> aiobatches.BatchEvent[aiobatches.Batch]:
    """The watch's next event, within seconds (a rest of an hour would be a failure)."""
    async with asyncio.timeout(5):
        return await anext(watch)


async def test_a_notified_batch_is_retrieved_at_once_and_its_change_is_the_next_event() -> None:
    """A watch resting for an hour wakes on a notification, retrieves that one batch (no
    listing), and reports its finish; a second notification with no change reports nothing."""
    listed = [batch(0, "in_progress"), batch(1, "in_progress")]
    async with (
        ScriptedServer(listed) as server,
        server.client() as client,
        client.watch_batches(poll_interval=HOUR) as watch,
    ):
        assert [(await next_event(watch)).kind for _ in range(2)] == ["existing"] * 2
        lists = len(server.lists)
        server.batches[1]["status"] = "completed"
        waiting = asyncio.create_task(next_event(watch))
        await asyncio.sleep(0.05)  # the watch is resting now
        watch.notify("batch_000001")
        event = await waiting
        assert (event.kind, event.batch.id, event.finished) == ("updated", "batch_000001", True)
        assert (len(server.lists), server.retrievals) == (lists, ["batch_000001"])
        watch.notify("batch_000001")  # a duplicate webhook: the same state again
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await anext(watch)
    assert server.retrievals == ["batch_000001", "batch_000001"]


async def test_repeated_notifications_coalesce_and_strays_are_ignored() -> None:
    """Three notifications of one batch before the watch wakes make one retrieval; an id
    the watch does not follow makes none."""
    listed = [batch(0, "in_progress"), batch(1, "in_progress")]
    async with (
        ScriptedServer(listed) as server,
        server.client() as client,
        client.watch_batches(poll_interval=HOUR, ids=["batch_000000"]) as watch,
    ):
        assert (await next_event(watch)).batch.id == "batch_000000"
        server.batches[0]["status"] = "finalizing"
        for batch_id in ("batch_000000", "batch_000001", "batch_000000", "batch_000000"):
            watch.notify(batch_id)
        event = await next_event(watch)
    assert (event.kind, event.changes) == ("updated", ("status",))
    assert server.retrievals == ["batch_000000"]


async def test_a_lost_notification_is_caught_by_the_next_cycle() -> None:
    """A batch that finished with no notification is reported by the next reconciling cycle."""
    async with ScriptedServer([batch(0, "in_progress")]) as server:

        async def finish(_: float) -> None:
            server.batches[0]["status"] = "completed"

        with between_polls(finish):
            async with server.client() as client:
                watch = client.watch_batches(poll_interval=600, until_finished=True)
                kinds = [event.kind async for event in watch]
    assert kinds == ["existing", "updated"]


async def test_until_finished_ends_when_news_finishes_the_last_named_batch() -> None:
    """Watching named ids until they finish, the notification that finishes the last one
    ends the watch at once, not at the next cycle an hour later."""
    listed = [batch(0, "in_progress"), batch(1, "completed")]
    async with ScriptedServer(listed) as server, server.client() as client:
        watch = client.watch_batches(
            poll_interval=HOUR, ids=["batch_000000", "batch_000001"], until_finished=True
        )
        assert {(await next_event(watch)).batch.id for _ in range(2)} == {
            "batch_000000",
            "batch_000001",
        }
        server.batches[0]["status"] = "expired"
        watch.notify("batch_000000")
        assert (await next_event(watch)).finished
        with pytest.raises(StopAsyncIteration):
            await next_event(watch)


async def test_a_flood_of_notifications_runs_one_cycle_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More notifications pending than the bound make one ordinary cycle, not a
    retrieval each: pending news stays bounded, and nothing is missed."""
    monkeypatch.setattr(_wakeups, "MAX_PENDING", 3)
    batches = [batch(index, "in_progress") for index in range(5)]
    async with (
        ScriptedServer(batches) as server,
        server.client() as client,
        client.watch_batches(poll_interval=HOUR) as watch,
    ):
        assert [(await next_event(watch)).kind for _ in range(5)] == ["existing"] * 5
        lists = len(server.lists)
        for each in batches:
            each["status"] = "completed"
            watch.notify(each["id"])
        changed = {(await next_event(watch)).batch.id for _ in range(5)}
    assert changed == {each["id"] for each in batches}
    assert server.retrievals == []
    assert len(server.lists) == lists + 1


async def test_closing_a_notified_watch_ends_it_at_once() -> None:
    """A watch closed with notifications pending ends quietly, and takes no more."""
    async with ScriptedServer([batch(0, "in_progress")]) as server, server.client() as client:
        watch = client.watch_batches(poll_interval=HOUR)
        assert (await next_event(watch)).kind == "existing"
        await watch.aclose()
        watch.notify("batch_000000")
        with pytest.raises(StopAsyncIteration):
            await next_event(watch)
    assert server.retrievals == []


def test_a_notification_names_a_batch() -> None:
    """A notification that is not a batch id is a clear error at once."""
    watch = aiobatches.Client(api_key="sk-test").watch_batches()
    with pytest.raises((TypeError, ValueError), match="batch_id"):
        watch.notify("../v1/files")
    with pytest.raises(TypeError, match="batch_id"):
        watch.notify(None)  # type: ignore[arg-type]


async def test_a_watch_with_no_interval_still_rests_once_per_cycle() -> None:
    """`poll_interval=0` rests no time, but still rests: the sleeper runs once a cycle
    (a loop with no await between cycles would starve every other task)."""
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        rests = 0

        async def count(_: float) -> None:
            nonlocal rests
            rests += 1
            if rests == 3:
                raise RuntimeError("enough")

        with between_polls(count) as delays, pytest.raises(RuntimeError, match="enough"):
            async with asyncio.timeout(5), server.client() as client:
                async for _ in client.watch_batches(poll_interval=0):
                    pass
    assert delays == [0.0, 0.0, 0.0]
    assert len(server.lists) == 3
