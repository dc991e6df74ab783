"""Restart-safe: `watch.checkpoint()` and `watch_batches(resume=...)` go on with no flood
of "existing", nothing missed and nothing twice, from a checkpoint small and JSON-able."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _scripted import NOW, ScriptedServer, batch, between_polls, make_batch, nothing

import aiobatches


class StopWatchingError(Exception):
    """Raised from a pause to end a watch in a test."""


async def first_look(server: ScriptedServer, **options: Any) -> tuple[list[str], dict[str, Any]]:
    """Watch until the first look is done; the kinds of its events and the checkpoint."""

    async def stop(_: float) -> None:
        raise StopWatchingError

    kinds: list[str] = []
    state: dict[str, Any] = {}
    with between_polls(stop), pytest.raises(StopWatchingError):
        async with server.client() as client, client.watch_batches(**options) as watch:
            async for event in watch:
                kinds.append(event.kind)
                state = watch.checkpoint()
    return kinds, state


async def resumed(
    server: ScriptedServer, state: dict[str, Any]
) -> list[aiobatches.BatchEvent[aiobatches.Batch]]:
    """The events of one cycle of a watch resumed from `state`."""

    async def stop(_: float) -> None:
        raise StopWatchingError

    events: list[aiobatches.BatchEvent[aiobatches.Batch]] = []
    with between_polls(stop), pytest.raises(StopWatchingError):
        async with server.client() as client:
            async for event in client.watch_batches(resume=state):
                events.append(event)
    return events


async def test_a_resumed_watch_reports_only_what_changed_while_nothing_watched() -> None:
    """After a restart: no "existing" flood; a batch that finished meanwhile is "updated"
    with its checkpointed state as `previous`, a new one "created", the rest silent."""
    history = [batch(index, "completed") for index in range(1, 40)]
    history.insert(5, make_batch(99, status="in_progress", created_at=NOW - 330))
    async with ScriptedServer(history) as server:
        kinds, state = await first_look(server, limit=10)
        assert kinds == ["existing"] * 40
        json.dumps(state)  # JSON-able as it is
        assert len(state["batches"]) == 1  # the unfinished one; the history is not kept
        server.batches[5]["status"] = "completed"
        server.batches.insert(0, make_batch(100, status="validating", created_at=NOW + 60))
        events = await resumed(server, json.loads(json.dumps(state)))
    assert [(e.kind, e.batch.id, e.finished) for e in events] == [
        ("created", "batch_000100", False),
        ("updated", "batch_000099", True),
    ]
    assert events[1].previous is not None
    assert events[1].previous.status == "in_progress"


async def test_a_checkpoint_holds_only_the_events_handed_out() -> None:
    """A checkpoint taken before events were handed out leaves them to the resumed watch:
    every change is reported once, none twice."""
    listed = [batch(index, "in_progress") for index in range(6)]
    async with ScriptedServer(listed) as server, server.client() as client:
        watch = client.watch_batches(limit=100)
        first = await anext(watch)
        state = watch.checkpoint()
        await watch.aclose()
    assert [b["id"] for b in state["batches"]] == [first.batch.id]
    async with ScriptedServer(listed) as server:
        events = await resumed(server, state)
    assert sorted(e.batch.id for e in events) == [f"batch_{i:06d}" for i in range(1, 6)]
    assert {e.kind for e in events} == {"existing"}  # the first look was not done yet


async def test_batches_of_the_newest_second_are_told_apart_by_id() -> None:
    """Many batches share the newest second: those reported before the checkpoint stay
    silent after it, and one created in that second while nothing watched is "created"."""
    second = NOW
    listed = [make_batch(index, status="completed", created_at=second) for index in range(4)]
    async with ScriptedServer(listed) as server:
        _, state = await first_look(server)
        server.batches.insert(2, make_batch(50, status="completed", created_at=second))
        events = await resumed(server, state)
    assert [(e.kind, e.batch.id) for e in events] == [("created", "batch_000050")]


async def test_a_resumed_watch_goes_on_as_the_one_before_it() -> None:
    """A resumed watch keeps watching: later cycles report later changes once."""
    async with ScriptedServer([batch(0, "in_progress"), batch(1, "in_progress")]) as server:
        _, state = await first_look(server)
        pauses = 0

        async def progress(_: float) -> None:
            nonlocal pauses
            pauses += 1
            if pauses == 3:
                raise StopWatchingError
            server.batches[pauses - 1]["status"] = "completed"

        seen: list[tuple[str, str]] = []
        with between_polls(progress), pytest.raises(StopWatchingError):
            async with server.client() as client:
                async for event in client.watch_batches(resume=state):
                    seen.append((event.kind, event.batch.id))
    assert seen == [("updated", "batch_000000"), ("updated", "batch_000001")]


@pytest.mark.parametrize(
    "state",
    [
        None,
        [],
        {"version": 2},
        {"version": "1"},
        {"version": 1},
        {"version": 1, "since": "yesterday"},
        {"version": 1, "since": None, "ids": "batch_a", "cycles": 1},
    ],
    ids=["none", "a list", "a later version", "a string version", "empty", "since", "ids"],
)
async def test_a_malformed_checkpoint_is_refused_before_any_request(state: object) -> None:
    """A checkpoint of another version or shape is a ValueError before any request."""
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        _, good = await first_look(server)
        requests = len(server.lists)
        async with server.client() as client:
            if state is None:
                bad: Any = {**good, "batches": [{"id": "batch_x"}]}
            else:
                bad = state
            with pytest.raises(ValueError, match="resume"):
                client.watch_batches(resume=bad)
        assert len(server.lists) == requests


async def test_resume_carries_since_and_ids() -> None:
    """`since` or `ids` beside `resume` is a ValueError: the checkpoint carries its own."""
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        _, state = await first_look(server)
        async with server.client() as client:
            with pytest.raises(ValueError, match="since and ids"):
                client.watch_batches(resume=state, ids=["batch_000000"])


async def test_a_checkpoint_grows_with_the_unfinished_batches_not_the_history() -> None:
    """Behind 500 finished batches, a checkpoint holds the unfinished few, and names only
    the batches of the newest second."""
    history = [batch(index, "completed") for index in range(3, 503)]
    history[:0] = [batch(index, "in_progress") for index in range(3)]
    async with ScriptedServer(history) as server:
        with between_polls(nothing):
            _, state = await first_look(server)
    assert len(state["batches"]) == 3
    assert len(state["seen"]) <= 1
    assert len(json.dumps(state)) < 10_000
