"""Closing a watch or a wait from anywhere stops it at once, and batches that read badly
are followed as far as they can be told apart from their neighbours."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from _helpers import stream_tasks
from _scripted import ScriptedServer, between_polls, make_batch, nothing

import aiobatches
from aiobatches import _retry
from aiobatches._converter import parse_page
from aiobatches._polling import Source
from aiobatches._response import FetchedPage, Retrieved

NOW = 1_000_000


def history(statuses: list[str]) -> list[dict[str, Any]]:
    """Batches newest first with these statuses, created ten seconds apart."""
    return [
        make_batch(index, status=status, created_at=NOW - 10 * index)
        for index, status in enumerate(statuses)
    ]


def malformed(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with request counts no model can read."""
    batch["request_counts"] = {"total": "many"}
    return batch


async def test_closing_a_resting_watch_from_another_task_ends_it_at_once() -> None:
    """A shutdown handler's `aclose()` ends the consumer's wait for the next event at once,
    though the watch was resting for as long as the server asked."""
    forever = asyncio.Event()

    async def long_rest(_: float) -> None:
        await forever.wait()

    async with ScriptedServer(history(["in_progress"])) as server, server.client() as client:
        watch = client.watch_batches()
        with between_polls(long_rest):
            first = await anext(watch)
            consumer = asyncio.ensure_future(anext(watch))
            await asyncio.sleep(0.05)  # the consumer is resting now
            await watch.aclose()
            async with asyncio.timeout(5):
                with pytest.raises(StopAsyncIteration):
                    await consumer
    assert first.kind == "existing"
    assert stream_tasks() == []


async def test_a_closed_watch_hands_out_no_more_events() -> None:
    """Events a cycle queued but not yet handed out are dropped when the watch closes."""
    async with ScriptedServer(history(["in_progress"] * 3)) as server, server.client() as client:
        watch = client.watch_batches()
        with between_polls(nothing):
            await anext(watch)
            await watch.aclose()
            with pytest.raises(StopAsyncIteration):
                await anext(watch)


async def test_closing_a_watch_cancels_its_retrievals() -> None:
    """A watch closed while it retrieves a batch the listing stopped showing ends at once,
    with no event made after the close and no WARNING about the cut request."""
    async with ScriptedServer(history(["in_progress", "in_progress"])) as server:
        server.held.add("batch_000001")

        async def vanish(_: float) -> None:
            server.unlisted.add("batch_000001")

        async with server.client() as client:
            watch = client.watch_batches()
            with between_polls(vanish):
                events = [await anext(watch), await anext(watch)]
                consumer = asyncio.ensure_future(anext(watch))
                while "batch_000001" not in server.retrievals:
                    await asyncio.sleep(0.01)
                await watch.aclose()
                try:
                    async with asyncio.timeout(5):
                        with pytest.raises(StopAsyncIteration):
                            await consumer
                finally:
                    server.release.set()  # the server's own handler still holds the answer
                    await asyncio.wait({consumer})
    assert [e.kind for e in events] == ["existing", "existing"]


async def test_the_error_that_ends_a_watch_comes_after_the_events_before_it() -> None:
    """A final failure after a cycle's listing is raised once that cycle's events are out."""
    async with ScriptedServer(history(["in_progress", "in_progress"])) as server:

        async def vanish_then_refuse(_: float) -> None:
            server.unlisted.add("batch_000001")
            server.batches[0]["status"] = "completed"
            server.retrieve_faults = [(403, {})]

        async with server.client() as client:
            kinds = []
            with between_polls(vanish_then_refuse), pytest.raises(aiobatches.PermissionDeniedError):
                async for event in client.watch_batches():
                    kinds.append((event.kind, event.batch.id))
    assert kinds[-1] == ("updated", "batch_000000")


async def test_a_final_retrieval_error_does_not_wait_for_the_others() -> None:
    """An unknown id ends a wait at once, while another retrieval still hangs."""
    async with ScriptedServer(history(["completed"] * 250 + ["in_progress"])) as server:
        server.held.add("batch_000250")
        async with server.client() as client:
            try:
                async with asyncio.timeout(5):
                    with between_polls(nothing), pytest.raises(aiobatches.NotFoundError):
                        await client.wait_for_batches(["batch_000250", "batch_unknown"])
            finally:
                server.release.set()  # the server's own handler still holds the answer


async def test_a_malformed_neighbour_below_since_never_ends_a_watch() -> None:
    """A malformed batch lying where it may be older than `since` is retrieved to tell;
    malformed there too, it is left as a neighbour, even with on_invalid="raise"."""
    batches = [
        make_batch(1, status="in_progress", created_at=NOW + 10),
        malformed(make_batch(2, status="completed", created_at=NOW - 3_600)),
    ]
    async with ScriptedServer(batches) as server, server.client() as client:

        async def finish(_: float) -> None:
            batches[0]["status"] = "completed"

        with between_polls(finish):
            watch = client.watch_batches(since=NOW, until_finished=True)
            events = [(e.kind, e.batch.id) async for e in watch]
    assert events == [("existing", "batch_000001"), ("updated", "batch_000001")]


async def test_a_batch_malformed_at_first_sight_is_followed_once_it_reads_well(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With on_invalid="skip", a batch the first look cannot read is retrieved each cycle
    (the watch does not end while it is unread), and reported once it reads well."""
    unread = malformed(make_batch(2, status="in_progress", created_at=NOW - 20))
    batches = [*history(["completed", "completed"]), unread]
    async with ScriptedServer(batches) as server, server.client() as client:
        rests = 0

        async def mend(_: float) -> None:
            nonlocal rests
            rests += 1
            if rests == 2:
                batches[2]["request_counts"] = {"total": 9, "completed": 9, "failed": 0}
                batches[2]["status"] = "completed"

        quiet = caplog.at_level(logging.ERROR, "aiobatches")
        with quiet, between_polls(mend):
            watch = client.watch_batches(on_invalid="skip", until_finished=True)
            events = [(e.kind, e.batch.id, e.finished) async for e in watch]
    assert events == [
        ("existing", "batch_000000", False),
        ("existing", "batch_000001", False),
        ("created", "batch_000002", True),
    ]


async def test_a_vanished_batch_retrieved_malformed_does_not_pin_the_horizon() -> None:
    """A followed batch the listing stopped showing and whose retrieval stays malformed is
    followed by retrieval: cycles list only what is new, however many arrive."""
    batches = history(["in_progress"])
    async with ScriptedServer(batches) as server, server.client() as client:
        lists_per_cycle: list[int] = []
        seen = 0
        made = 1

        async def arrive(_: float) -> None:
            nonlocal seen, made
            lists_per_cycle.append(len(server.lists) - seen)
            seen = len(server.lists)
            if len(lists_per_cycle) == 1:
                server.unlisted.add("batch_000000")
                malformed(batches[0])
            if len(lists_per_cycle) == 8:
                raise asyncio.CancelledError
            for _ in range(3):
                batches.insert(0, make_batch(made, status="completed", created_at=NOW + made))
                made += 1

        quiet = logging.getLogger("aiobatches")
        quiet.disabled = True
        try:
            with between_polls(arrive), pytest.raises(asyncio.CancelledError):
                async for _ in client.watch_batches(on_invalid="skip", limit=2):
                    pass
        finally:
            quiet.disabled = False
    assert max(lists_per_cycle[2:]) <= 3, lists_per_cycle


async def test_a_wait_under_a_manual_clock_has_no_real_time_deadline() -> None:
    """With sleeps driven by a clock, only that clock's time counts against `timeout`:
    slow answers in real time never turn a success into a TimeoutError."""
    async with ScriptedServer(history(["in_progress"])) as server:
        server.latency = 0.4  # three polls take 1.2 s of real time
        manual = 0.0

        async def tick(delay: float) -> None:
            nonlocal manual
            manual += delay
            if manual >= 0.5:
                server.batches[0]["status"] = "completed"

        async with server.client() as client:
            with _retry.sleeping_through(tick, clock=lambda: manual):
                (batch,) = await client.wait_for_batches(
                    ["batch_000000"], poll_interval=0.25, timeout=1.0
                )
    assert batch.status == "completed"


def _source(listed: dict[str, Any], retrieved: dict[str, Any]) -> Source:
    """A client seam with no server: one page holding `listed`; `retrieved` by id."""

    async def fetch(after: str | None, limit: int) -> FetchedPage[aiobatches.Batch]:
        return FetchedPage(parse_page({"data": [dict(listed)], "has_more": False}), ())

    async def retrieve(batch_id: str) -> Retrieved[aiobatches.Batch]:
        await asyncio.sleep(0)
        (batch,) = parse_page({"data": [dict(retrieved)]}).batches
        return Retrieved(batch, None)

    return Source(fetch, retrieve)


async def test_a_watch_closed_as_its_retrievals_end_hands_out_nothing_they_found() -> None:
    """Closing a watch from another task just after its retrievals finished, before the
    iterating task resumes, drops what they found: no event arrives after the close."""
    named = make_batch(1, status="in_progress", created_at=100)
    watch: aiobatches.BatchWatch[aiobatches.Batch] = aiobatches.BatchWatch(
        _source(make_batch(2, status="completed", created_at=200), named),
        poll_interval=1,
        since=None,
        ids=[named["id"]],
        until_finished=False,
        limit=10,
    )
    kinds: list[str] = []

    async def consume() -> None:
        async for event in watch:
            kinds.append(event.kind)

    consumer = asyncio.create_task(consume())
    retrievals = await _task_named("aiobatches watch retrievals")
    while not retrievals.done():
        await asyncio.sleep(0)
    await watch.aclose()
    await consumer
    assert kinds == []


async def test_every_caller_of_a_watchs_close_waits_for_its_work_to_stop() -> None:
    """Two tasks closing a watch at once both return only when its rest has ended, and
    iteration then ends."""
    first = make_batch(0, status="in_progress", created_at=100)
    async with ScriptedServer([first]) as server, server.client() as client:
        watch = client.watch_batches(poll_interval=3600)
        assert (await anext(watch)).kind == "existing"
        resting = asyncio.create_task(anext(watch))
        rest = await _task_named("aiobatches watch rest")
        closing = asyncio.create_task(watch.aclose())
        await asyncio.sleep(0)  # the first close has cancelled the rest, and waits for it
        await watch.aclose()
        assert rest.done()
        await closing
        with pytest.raises(StopAsyncIteration):
            await resting
        with pytest.raises(StopAsyncIteration):
            await anext(watch)


async def test_an_error_met_before_the_close_is_dropped_with_the_events() -> None:
    """A watch closed while an error waits behind its events ends quietly: the close
    drops what was not handed out, the error included."""
    # The page shows the first batch, and one below `since` that ends the cycle at once; its
    # retrievals (the unknown named id: 404) fail before the event is handed out.
    listed = [
        make_batch(0, status="in_progress", created_at=100),
        make_batch(1, status="completed", created_at=50),
    ]
    async with ScriptedServer(listed) as server, server.client() as client:
        watch = client.watch_batches(since=75, ids=["batch_000000", "batch_999999"])
        assert (await anext(watch)).kind == "existing"
        await watch.aclose()
        with pytest.raises(StopAsyncIteration):
            await anext(watch)


async def _task_named(name: str) -> asyncio.Task[Any]:
    """The running task of that name, once the code under test has started it."""
    while not (found := [task for task in asyncio.all_tasks() if task.get_name() == name]):
        await asyncio.sleep(0)
    return found[0]
