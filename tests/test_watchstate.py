"""What a watch knows, decided with no I/O: the events changes make, where the next cycle
stops, and what it forgets."""

from __future__ import annotations

from _scripted import make_batch

from aiobatches import Batch
from aiobatches._converter import parse_page
from aiobatches._watchstate import WatchState


def batch(index: int, status: str, created_at: int) -> Batch:
    """Batch number `index` as the API would send it."""
    parsed = parse_page({"data": [make_batch(index, status=status, created_at=created_at)]})
    (only,) = parsed.batches
    return only


def test_events_say_what_changed_and_an_unchanged_batch_makes_none() -> None:
    """A first look makes "existing", a later one "created"; a change "updated" with the
    fields that differ; the same batch again, nothing."""
    state = WatchState(since=None, ids=None)
    first = state.see(batch(1, "in_progress", 100))
    assert first is not None
    assert first.kind == "existing"
    state.found, state.top = {first.batch.id}, 100
    state.end_cycle()
    assert state.see(batch(1, "in_progress", 100)) is None
    updated = state.see(batch(1, "completed", 100))
    assert updated is not None
    assert (updated.kind, updated.changes, updated.finished) == ("updated", ("status",), True)
    created = state.see(batch(2, "validating", 101))
    assert created is not None
    assert created.kind == "created"


def test_the_horizon_is_the_oldest_unfinished_second_and_what_lies_below_is_forgotten() -> None:
    """After a cycle the horizon is the oldest unfinished batch's creation second; finished
    batches below it are dropped, and new ones below it are not followed."""
    state = WatchState(since=None, ids=None)
    seen = [batch(3, "completed", 90), batch(2, "in_progress", 100), batch(1, "completed", 110)]
    for each in seen:
        state.see(each)
    state.found, state.top = {each.id for each in seen}, 110
    state.end_cycle()
    assert state.horizon == 100
    assert set(state.known) == {"batch_000002", "batch_000001"}
    assert state.see(batch(4, "completed", 99)) is None
    assert state.see(batch(4, "completed", 99), followed=True) is not None


def test_with_nothing_unfinished_the_horizon_is_the_newest_second_seen() -> None:
    """When every batch is finished the next cycle lists down to the newest second it saw."""
    state = WatchState(since=None, ids=None)
    state.see(batch(1, "completed", 100))
    state.found, state.top = {"batch_000001"}, 100
    state.end_cycle()
    assert state.horizon == 100
    assert state.all_finished


def test_a_batch_followed_by_retrieval_never_holds_the_horizon_down() -> None:
    """An unfinished batch the listing stopped showing is retrieved instead, and the
    horizon moves past it; it stays followed while unfinished."""
    state = WatchState(since=None, ids=None)
    old, new = batch(1, "in_progress", 50), batch(2, "completed", 200)
    state.see(old)
    state.see(new)
    state.found, state.top = {old.id, new.id}, 200
    state.end_cycle()
    assert state.horizon == 50
    state.begin_cycle()
    state.found, state.top = {new.id}, 200
    assert state.missing() == [old.id]
    state.by_retrieval.add(old.id)
    state.end_cycle()
    assert state.horizon == 200
    assert old.id in state.known


def test_named_ids_and_since_bound_what_is_followed() -> None:
    """`ids` limits the batches followed; the first look retrieves a named id it did not
    reach; `since` raises the floor above the horizon."""
    state = WatchState(since=150.0, ids=frozenset({"batch_000001", "batch_000009"}))
    assert state.see(batch(2, "in_progress", 200)) is None  # not named
    assert state.see(batch(1, "in_progress", 100)) is None  # below since
    assert state.below_floor(batch(3, "in_progress", 149))
    assert not state.below_floor(batch(3, "in_progress", 150))
    state.found = {"batch_000001"}
    assert state.missing() == ["batch_000009"]
    assert not state.first_look_complete()
