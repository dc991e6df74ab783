"""A watch facing failures and malformed batches: it follows the retry policy's own verdict,
and a batch it does not follow never blocks it."""

from __future__ import annotations

import datetime
import logging
from typing import Any

import pytest
from _scripted import ScriptedServer, between_polls, make_batch, nothing

import aiobatches


class StopWatchingError(Exception):
    """Ends a watch from inside its pause, once the test has seen enough cycles."""


def history(statuses: list[str]) -> list[dict[str, Any]]:
    """Batches newest first with these statuses, created ten seconds apart."""
    return [
        make_batch(index, status=status, created_at=1_000_000 - 10 * index)
        for index, status in enumerate(statuses)
    ]


@pytest.mark.parametrize(
    ("status", "headers", "pause"),
    [
        (400, {"x-should-retry": "true"}, 15.0),
        (429, {"retry-after": "300"}, 120.0),  # capped, not the bare interval
        (503, {"retry-after-ms": "45000"}, 45.0),
        (502, {}, 15.0),
    ],
)
async def test_a_watch_retries_a_cycle_as_the_retry_policy_says(
    status: int, headers: dict[str, str], pause: float
) -> None:
    """A listing failing with what the policy calls transient is tried again after
    max(interval, the server's delay capped at 120 s); the watch then reports the change."""
    async with ScriptedServer(history(["in_progress"])) as server:
        server.list_faults = [(status, headers)]
        rests = 0

        async def finish(_: float) -> None:
            nonlocal rests
            rests += 1
            if rests == 2:
                server.batches[0]["status"] = "completed"

        with between_polls(finish) as delays:
            async with server.client() as client:
                watch = client.watch_batches(until_finished=True)
                kinds = [event.kind async for event in watch]
    assert kinds == ["existing", "updated"]
    assert delays == [pause, 15.0]


async def test_a_watch_ends_on_what_the_retry_policy_calls_final() -> None:
    """`x-should-retry: false` on a 503 ends the watch with that error, after one try."""
    async with ScriptedServer(history(["in_progress"])) as server:
        server.list_faults = [(503, {"x-should-retry": "false"})] * 3

        async def stop(_: float) -> None:
            raise StopWatchingError

        with between_polls(stop) as delays:
            async with server.client() as client:
                with pytest.raises(aiobatches.InternalServerError):
                    async for _ in client.watch_batches():
                        pass
    assert (delays, len(server.lists)) == ([], 1)


async def test_a_transient_failure_retrieving_a_missing_batch_does_not_end_the_watch() -> None:
    """A followed batch the listing stops showing is retrieved; when that retrieve fails
    transiently, the cycle is tried again, and the batch's finish is reported once."""
    async with ScriptedServer(history(["in_progress"] * 3)) as server:
        rests = 0

        async def vanish_then_finish(_: float) -> None:
            nonlocal rests
            rests += 1
            if rests == 1:
                server.unlisted.add("batch_000001")
                server.retrieve_faults = [(503, {})]
            if rests == 3:
                for batch in server.batches:
                    batch["status"] = "completed"

        with between_polls(vanish_then_finish) as delays:
            async with server.client() as client:
                watch = client.watch_batches(until_finished=True)
                events = [(e.kind, e.batch.id, e.finished) async for e in watch]
    assert events == [
        ("existing", "batch_000000", False),
        ("existing", "batch_000001", False),
        ("existing", "batch_000002", False),
        ("updated", "batch_000000", True),
        ("updated", "batch_000002", True),
        ("updated", "batch_000001", True),  # found by retrieval, after the listing
    ]
    assert delays == [15.0, 15.0, 15.0]
    assert server.retrievals == ["batch_000001"] * 3


async def test_a_malformed_neighbour_never_blocks_a_watch_of_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A malformed batch the watch does not follow is skipped with a WARNING, even with
    on_invalid="raise"; the watched batches are reported as usual."""
    batches = history(["in_progress", "failed", "in_progress"])
    batches[1]["request_counts"] = {"total": "many"}

    async def finish(_: float) -> None:
        batches[0]["status"] = batches[2]["status"] = "completed"

    async with ScriptedServer(batches) as server:
        with caplog.at_level(logging.WARNING, "aiobatches"), between_polls(finish):
            async with server.client() as client:
                ids = ["batch_000000", "batch_000002"]
                watch = client.watch_batches(ids=ids, until_finished=True)
                events = [(e.kind, e.batch.id, e.finished) async for e in watch]
    assert events == [
        ("existing", "batch_000000", False),
        ("existing", "batch_000002", False),
        ("updated", "batch_000000", True),
        ("updated", "batch_000002", True),
    ]
    assert any("batch_000001" in r.getMessage() for r in caplog.records)


async def test_a_malformed_followed_batch_raises_or_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A malformed batch the watch follows raises by default (after the batches before it);
    with on_invalid="skip" it is logged and the rest of the page is still reported."""
    batches = history(["in_progress", "failed", "completed"])
    batches[1]["request_counts"] = {"total": "many"}
    async with ScriptedServer(batches) as server, server.client() as client:
        seen = []
        with between_polls(nothing), pytest.raises(aiobatches.APIResponseValidationError):
            async for event in client.watch_batches():
                seen.append(event.batch.id)
        assert seen == ["batch_000000"]

        async def stop(_: float) -> None:
            raise StopWatchingError

        seen = []
        quiet = caplog.at_level(logging.WARNING, "aiobatches")
        with quiet, between_polls(stop), pytest.raises(StopWatchingError):
            async for event in client.watch_batches(on_invalid="skip"):
                seen.append(event.batch.id)
    assert seen == ["batch_000000", "batch_000002"]
    assert any("skipped a malformed batch" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("since", [10**400, float("inf"), -(10**400)])
async def test_a_since_beyond_any_time_fails_at_once(since: float) -> None:
    """A `since` no float can hold is a ValueError before any request, not an OverflowError."""
    async with ScriptedServer(history(["in_progress"])) as server, server.client() as client:
        with pytest.raises(ValueError, match="since"):
            client.watch_batches(since=since)
    assert server.lists == []


@pytest.mark.parametrize("on_invalid", ["raise", "skip"])
async def test_a_malformed_retrieval_of_a_followed_batch_raises_or_is_skipped(
    on_invalid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A vanished batch retrieved malformed raises, or with "skip" is logged and kept as it
    was, and the watch goes on to report its finish once it reads well again."""
    async with ScriptedServer(history(["in_progress", "in_progress"])) as server:
        rests = 0

        async def vanish(_: float) -> None:
            nonlocal rests
            rests += 1
            if rests == 1:  # listed no more, and its retrieval is malformed
                server.unlisted.add("batch_000001")
                server.batches[1]["request_counts"] = {"total": "many"}
            if rests == 2:
                server.batches[1]["request_counts"] = {"total": 9, "completed": 9, "failed": 0}
                for batch in server.batches:
                    batch["status"] = "completed"

        with caplog.at_level(logging.WARNING, "aiobatches"), between_polls(vanish):
            async with server.client() as client:
                watch = client.watch_batches(until_finished=True, on_invalid=on_invalid)  # type: ignore[arg-type]
                events: list[tuple[str, str]] = []
                failure = None
                try:
                    async for event in watch:
                        events.append((event.kind, event.batch.id))
                except aiobatches.APIResponseValidationError as error:
                    failure = str(error)
    first_look = [("existing", "batch_000000"), ("existing", "batch_000001")]
    if on_invalid == "raise":
        assert events == first_look
        assert failure is not None
        assert "total" in failure
    else:
        assert failure is None
        assert events == [*first_look, ("updated", "batch_000000"), ("updated", "batch_000001")]
        assert any("skipped a malformed batch" in r.getMessage() for r in caplog.records)


async def test_a_naive_datetime_since_fails_at_once() -> None:
    """A `since` datetime without a timezone is ambiguous: a ValueError before any request."""
    async with ScriptedServer(history(["in_progress"])) as server, server.client() as client:
        with pytest.raises(ValueError, match="aware"):
            client.watch_batches(since=datetime.datetime(2026, 1, 1))
    assert server.lists == []


async def test_a_final_failure_wins_over_a_transient_one_in_the_same_cycle() -> None:
    """Two vanished batches retrieved in one cycle, one failing transiently and one for good:
    the final error ends the watch at once, whichever answer came first."""
    async with ScriptedServer(history(["in_progress", "in_progress", "in_progress"])) as server:

        async def vanish(_: float) -> None:
            if server.unlisted:  # a second rest: the final error did not end the watch
                raise StopWatchingError
            server.unlisted.update({"batch_000001", "batch_000002"})
            server.retrieve_faults = [(503, {}), (400, {"x-should-retry": "false"})]

        with between_polls(vanish) as delays:
            async with server.client() as client:
                with pytest.raises(aiobatches.BadRequestError):
                    async for _ in client.watch_batches():
                        pass
    assert delays == [15.0]
