"""Waiting honestly: no hang a server can cause, no end a transient failure can cause,
and each poll at the cost of the cheaper way to look."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from _scripted import ScriptedServer, between_polls, make_batch, nothing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiobatches
from aiobatches import _wait
from aiobatches.testing import FakeBatchesServer, ManualClock


def history(statuses: list[str]) -> list[dict[str, Any]]:
    """Batches newest first with these statuses, created ten seconds apart."""
    return [
        make_batch(index, status=status, created_at=1_000_000 - 10 * index)
        for index, status in enumerate(statuses)
    ]


async def test_an_empty_wait_returns_at_once_without_a_request() -> None:
    """Waiting for no batch at all is done before it starts: no request is made."""
    async with ScriptedServer(history(["in_progress"])) as server, server.client() as client:
        assert await client.wait_for_batches([]) == []
    assert (server.lists, server.retrievals) == ([], [])


async def test_retrieve_refuses_an_answer_about_another_batch() -> None:
    """A server answering a retrieve with another batch is a validation error, not a substitute;
    a wait on it ends with that error instead of polling for ever."""
    async with ScriptedServer(history(["in_progress", "completed"])) as server:
        server.answer_as["batch_000000"] = "batch_000001"
        async with server.client() as client:
            with pytest.raises(aiobatches.APIResponseValidationError, match="batch_000001"):
                await client.retrieve_batch("batch_000000")
            with between_polls(nothing), pytest.raises(aiobatches.APIResponseValidationError):
                await client.wait_for_batches(["batch_000000"])


async def test_a_poll_after_hint_is_capped_and_counts_for_one_poll() -> None:
    """An absurd openai-poll-after-ms waits 120 s, not years, and only before the next poll."""
    async with ScriptedServer(history(["in_progress"])) as server:
        server.poll_after_ms = 10**12
        polls = 0

        async def later(_: float) -> None:
            nonlocal polls
            polls += 1
            server.poll_after_ms = None  # the server stops asking
            if polls == 3:
                server.batches[0]["status"] = "completed"

        with between_polls(later) as delays:
            async with server.client() as client:
                await client.wait_for_batches(["batch_000000"], poll_interval=30)
    assert delays == [120.0, 30.0, 30.0]


async def test_a_transient_outage_never_ends_a_wait(caplog: pytest.LogCaptureFixture) -> None:
    """Polls failing with 503 after their retries are logged and tried again; the wait goes on."""
    async with ScriptedServer(history(["in_progress"])) as server:
        polls = 0

        async def outage(_: float) -> None:
            nonlocal polls
            polls += 1
            if polls == 1:
                server.retrieve_faults = [(503, {})] * 2  # two polls' worth (no retries)
            if polls == 3:
                server.batches[0]["status"] = "completed"

        with caplog.at_level(logging.WARNING, "aiobatches"), between_polls(outage) as delays:
            async with server.client() as client:
                (batch,) = await client.wait_for_batches(["batch_000000"], poll_interval=5)
    assert batch.status == "completed"
    assert delays == [5, 5, 5]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("503" in message for message in warnings)


@pytest.mark.parametrize(
    ("status", "headers", "pause"),
    [
        (400, {"x-should-retry": "true"}, 15.0),  # the server says try again: the policy agrees
        (429, {"retry-after": "300"}, 120.0),  # too long for a request's retry, not for a poll's
        (503, {"retry-after": "40"}, 40.0),
    ],
)
async def test_a_wait_goes_on_after_what_the_retry_policy_calls_transient(
    status: int, headers: dict[str, str], pause: float
) -> None:
    """The wait acts on the retry policy's verdict and its delay (capped at 120 s)."""
    async with ScriptedServer(history(["in_progress"])) as server:
        server.retrieve_faults = [(status, headers)]

        async def finish(_: float) -> None:
            server.batches[0]["status"] = "failed"

        with between_polls(finish) as delays:
            async with server.client() as client:
                (batch,) = await client.wait_for_batches(["batch_000000"])
    assert (batch.status, delays) == ("failed", [pause])


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        (503, {"x-should-retry": "false"}, aiobatches.InternalServerError),
        (401, {}, aiobatches.AuthenticationError),
    ],
)
async def test_a_wait_ends_on_what_the_retry_policy_calls_final(
    status: int, headers: dict[str, str], error: type[Exception]
) -> None:
    """An error the policy will not retry (`x-should-retry: false` included) ends the wait."""
    async with ScriptedServer(history(["in_progress"])) as server:
        server.retrieve_faults = [(status, headers)]
        with between_polls(nothing) as delays:
            async with server.client() as client:
                with pytest.raises(error):
                    await client.wait_for_batches(["batch_000000"])
    assert delays == []


async def test_a_deep_wait_learns_its_depth_once() -> None:
    """Three ids 40 pages deep: the first poll probes 3 pages and retrieves 3 (at most
    2 * 3 + 1); every later poll retrieves the 3 at once (at most 3 + 1), never probing again."""
    batches = [make_batch(i, status="completed", created_at=2_000_000 - i) for i in range(4_100)]
    deep = [3_950, 3_960, 3_970]
    for index in deep:
        batches[index]["status"] = "in_progress"
    async with ScriptedServer(batches) as server:
        costs: list[int] = []

        async def poll_done(_: float) -> None:
            costs.append(len(server.lists) + len(server.retrievals) - sum(costs))
            if len(costs) == 3:
                for index in deep:
                    batches[index]["status"] = "completed"

        with between_polls(poll_done):
            async with server.client() as client:
                await client.wait_for_batches([batches[i]["id"] for i in deep])
    costs.append(len(server.lists) + len(server.retrievals) - sum(costs))
    assert costs == [6, 3, 3, 3]


async def test_a_malformed_neighbour_never_breaks_a_wait(caplog: pytest.LogCaptureFixture) -> None:
    """A malformed batch on the page that is not waited for is skipped with a WARNING."""
    batches = history(["in_progress", "completed", "in_progress"])
    batches[1]["created_at"] = "yesterday"
    async with ScriptedServer(batches) as server:

        async def finish(_: float) -> None:
            batches[0]["status"] = batches[2]["status"] = "completed"

        with caplog.at_level(logging.WARNING, "aiobatches"), between_polls(finish):
            async with server.client() as client:
                done = await client.wait_for_batches(["batch_000000", "batch_000002"])
    assert [batch.status for batch in done] == ["completed", "completed"]
    assert any("batch_000001" in r.getMessage() for r in caplog.records)


async def test_a_malformed_waited_batch_raises_or_is_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A malformed batch that is waited for raises by default; with "skip" it is logged and
    the wait goes on until it is well formed and finished."""
    batches = history(["in_progress", "in_progress"])
    batches[1]["created_at"] = "yesterday"
    async with ScriptedServer(batches) as server, server.client() as client:
        with between_polls(nothing), pytest.raises(aiobatches.APIResponseValidationError):
            await client.wait_for_batches(["batch_000000", "batch_000001"])

        async def mend(_: float) -> None:
            batches[1]["created_at"] = 999_990
            batches[0]["status"] = batches[1]["status"] = "completed"

        with caplog.at_level(logging.WARNING, "aiobatches"), between_polls(mend) as delays:
            ids = ["batch_000000", "batch_000001"]
            done = await client.wait_for_batches(ids, on_invalid="skip")
    assert [batch.status for batch in done] == ["completed", "completed"]
    assert len(delays) == 1
    assert any("skipped a malformed batch" in r.getMessage() for r in caplog.records)


async def test_a_manual_clock_drives_a_waits_timeout() -> None:
    """Under `ManualClock.driving_sleeps`, the timeout is read from that clock: the wait ends
    with TimeoutError once the clock passes it, after the polls that fit."""
    clock = ManualClock()
    async with FakeBatchesServer(history(["in_progress"]), clock=clock) as server:
        client = aiobatches.Client(api_key="sk-test", base_url=server.url)
        async with client:
            with clock.driving_sleeps(_at_most(50)) as delays, pytest.raises(TimeoutError):
                await client.wait_for_batches(["batch_000000"], poll_interval=60, timeout=600)
    assert delays == [60.0] * 10  # polls at 0, 60, ..., 540 s; then the deadline
    assert clock.now() == clock.start + 600


def _at_most(sleeps: int) -> Callable[[float], None]:
    """A `before_each` that fails the test once a wait has slept that many times."""
    count = 0

    def count_one(_: float) -> None:
        nonlocal count
        count += 1
        if count > sleeps:
            raise AssertionError(f"more than {sleeps} sleeps: the timeout is not driven")

    return count_one


async def test_a_final_failure_wins_over_a_transient_one_in_the_same_poll() -> None:
    """Two ids retrieved in one poll, one failing transiently and one for good: the final
    error ends the wait at once, whichever answer came first."""
    # Two pages deep: the first poll lists two pages, then retrieves both.
    async with ScriptedServer(history(["completed"] * 250 + ["in_progress"] * 2)) as server:
        server.retrieve_faults = [(503, {}), (401, {})]

        async def no_second_poll(_: float) -> None:
            raise AssertionError("the final error did not end the wait")

        with between_polls(no_second_poll) as delays:
            async with server.client() as client:
                with pytest.raises(aiobatches.AuthenticationError):
                    await client.wait_for_batches(["batch_000250", "batch_000251"])
    assert (delays, len(server.lists), len(server.retrievals)) == ([], 2, 2)


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), limit=st.sampled_from([1, 3, 10]))
async def test_each_poll_costs_at_most_the_cheaper_way_plus_one(
    data: st.DataObject, limit: int
) -> None:
    """Ids anywhere in the list (ties, several per page, deep ones), some finishing and fewer
    than a page of new batches arriving between polls, for the `u` ids not known to be
    finished lying `p` pages deep: the first poll costs at most `2 * min(u, p) + 1`
    requests; a later one at most `min(u, p) + 1` when the first found every id by listing,
    and never more than `u` nor `2 * p + 1` when some were only known to lie deeper."""
    size = data.draw(st.integers(1, 60), label="batches")
    batches = [
        make_batch(i, status="completed", created_at=1_000_000 - i // 3) for i in range(size)
    ]
    chosen = data.draw(
        st.lists(st.integers(0, size - 1), min_size=1, max_size=12, unique=True), label="ids"
    )
    ids = [batches[i]["id"] for i in chosen]
    for index in chosen:
        batches[index]["status"] = "in_progress"
    made = size
    async with ScriptedServer(batches) as server:
        pending = list(ids)  # what the wait may still hold unfinished
        costs: list[tuple[int, int, int]] = []  # (requests, u, p) per poll
        seen = 0

        def depth() -> int:
            places = [i for i, b in enumerate(server.batches) if b["id"] in pending]
            return max(places) // limit + 1

        bounds = [(len(pending), depth())]

        async def between(_: float) -> None:
            nonlocal seen, made, pending
            requests = len(server.lists) + len(server.retrievals)
            costs.append((requests - seen, *bounds[-1]))
            seen = requests
            unfinished = {b["id"] for b in server.batches if b["status"] != "completed"}
            pending = [i for i in pending if i in unfinished]
            last = len(costs) >= 5  # every id finishes by the sixth poll
            for batch in server.batches:
                if batch["id"] in pending and (last or data.draw(st.booleans(), label="ends")):
                    batch["status"] = "completed"
            for _ in range(data.draw(st.integers(0, limit - 1), label="arrivals")):
                newest = server.batches[0]["created_at"]
                server.batches.insert(0, make_batch(made, status="completed", created_at=newest))
                made += 1
            bounds.append((len(pending), depth()))

        first_retrievals: list[str] = []

        async def first_poll_ends(delay: float) -> None:
            if not costs:
                first_retrievals.extend(server.retrievals)
            await between(delay)

        with between_polls(first_poll_ends):
            async with server.client() as client:  # pages of `limit`, which the API keeps at 100
                await _wait.wait_for_batches(
                    client._source(), ids, poll_interval=1, timeout=None, limit=limit
                )
        if not costs:
            first_retrievals.extend(server.retrievals)
        costs.append((len(server.lists) + len(server.retrievals) - seen, *bounds[-1]))
    (first, u, p), *later = costs
    assert first <= 2 * min(u, p) + 1, costs
    # Ids the first poll found by listing keep an exact depth; one it retrieved is known
    # only to lie deeper than the pages read, where no rule can promise `min(u, p) + 1`.
    exact = len(ids) == 1 or not first_retrievals
    for cost, u, p in later:
        assert cost <= (min(u, p) + 1 if exact else min(u, 2 * p + 1)), costs


async def test_an_observer_sees_every_state_the_wait_learns_and_nothing_else() -> None:
    """Progress needs no request of its own: the observer gets each waited-for batch as
    a listing or a retrieval reads it, and never a neighbour on the same page."""
    statuses = ["in_progress", "validating", "completed", "in_progress"]
    async with ScriptedServer(history(statuses)) as server:
        polls = 0

        async def finish(_: float) -> None:
            nonlocal polls
            polls += 1
            for batch in server.batches:
                batch["status"] = "completed" if polls == 2 else "finalizing"

        seen: list[tuple[str, str]] = []
        with (
            between_polls(finish),
            _wait.observing(lambda batch: seen.append((batch.id, batch.status))),
        ):
            async with server.client() as client:
                done = await client.wait_for_batches(["batch_000003", "batch_000001"])
        with between_polls(nothing):
            async with server.client() as client:
                await client.wait_for_batches(["batch_000003"])  # outside: nothing seen
    assert [batch.status for batch in done] == ["completed", "completed"]
    assert [s for i, s in seen if i == "batch_000001"] == ["validating", "finalizing", "completed"]
    assert [s for i, s in seen if i == "batch_000003"] == ["in_progress", "finalizing", "completed"]
    assert len(seen) == 6
