"""What a watch knows, with no I/O: each followed batch as last seen, the horizon, and
the events that changes make.

A finished batch never changes, and new batches appear on top of the newest-first
list. So after one look, a cycle need only list down to its *horizon*: the oldest
creation second among the batches that were unfinished (or the newest known
second when none was), and past every batch created in that second, since the
server lists batches of one second in any order. Invariant after each cycle:
every followed batch the server still lists or retrieves is known as it is now,
every batch held was created at or after the horizon (or is unfinished and
followed by retrieval), and each change made exactly one event.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any, Generic, Literal

import attrs
from attrs import frozen

from ._errors import APIError, APIResponseValidationError, NotFoundError
from ._models import AnyBatch, B, created_moment, created_second
from ._polling import skippable
from ._response import FetchedPage
from ._stream import OnInvalid, skip_malformed

EventKind = Literal["existing", "created", "updated"]
Verdict = Literal["final", "transient", "gone", "skip", "leave"]
"""What a failed retrieval means to a watch: it ends the watch, the cycle is tried again,
the batch is gone (dropped), malformed and skipped, or maybe not followed (left be)."""


@frozen
class BatchEvent(Generic[B]):
    """What a watch saw happen to one batch.

    `kind` is `"existing"` for a batch found by the first look, `"created"` for
    one seen for the first time later, `"updated"` for one that differs from
    the last time (`previous`, and `changes`: the names of the fields that differ).
    """

    kind: EventKind
    """`"existing"`, `"created"` or `"updated"`, as above."""
    batch: B
    """The batch as it is now."""
    previous: B | None = None
    """The batch as it was last seen, on an `"updated"` event; None on the others."""
    changes: tuple[str, ...] = ()
    """The names of the fields that differ from `previous`; empty unless `"updated"`."""

    @property
    def finished(self) -> bool:
        """True only on the event reporting a finish: `"updated"` from unfinished to
        finished, or `"created"` already finished; never on `"existing"`."""
        if self.kind == "existing" or not self.batch.is_finished:
            return False
        return self.previous is None or not self.previous.is_finished


def changed_fields(before: AnyBatch, after: AnyBatch) -> tuple[str, ...]:
    """The names of the fields that differ (an absent key and a null are the same: None)."""
    fields = attrs.fields(type(after))
    return tuple(f.name for f in fields if getattr(before, f.name) != getattr(after, f.name))


def unix_seconds(since: object) -> float | None:
    """`since` as Unix seconds: a finite number, or an aware datetime; else a ValueError."""
    if since is None:
        return None
    if isinstance(since, datetime.datetime):
        if since.tzinfo is None:
            raise ValueError("since must be an aware datetime (with a tzinfo) or Unix seconds")
        return since.timestamp()
    seconds = math.nan
    if isinstance(since, int | float) and not isinstance(since, bool):
        try:
            seconds = float(since)
        except OverflowError:  # an int beyond any float (and too long to show)
            seconds = math.inf
    if not math.isfinite(seconds):
        shown = "" if isinstance(since, int) else f", got {since!r}"
        raise ValueError(f"since must be finite Unix seconds or an aware datetime{shown}")
    return seconds


class WatchState:
    """The batches a watch follows as last seen, and where its next cycle stops."""

    def __init__(self, *, since: float | None, ids: frozenset[str] | None) -> None:
        self.since = since
        self.ids = ids
        self.known: dict[str, AnyBatch] = {}
        """Every batch held, as last seen: the followed ones at or above the horizon, and
        the unfinished ones followed by retrieval."""
        self.by_retrieval: set[str] = set()
        """Unfinished batches the listing stopped showing (or shows malformed): retrieved
        each cycle instead, so that they never hold the horizon down."""
        self.unreadable: dict[str, bool] = {}
        """Batches never yet read well (listed malformed), retrieved to read them: whether
        the watch surely follows them (then unfinished until read), or only may."""
        self.horizon: int | None = None
        """The creation second later cycles list down to (inclusive); None: the whole list."""
        self.cycles = 0
        """How many cycles ended; the first one's batches are `"existing"`."""
        self.ended: set[str] = set()
        """The named ids (`ids`) seen finished: none of them changes again."""
        self.newest: int | None = None
        """The newest creation second the ended cycles looked at: every batch created
        before it was looked at (or lies below the floor)."""
        self.seen_mark: int | None = None
        """Resumed from a checkpoint, while the horizon lies below it: a finished batch
        created before this second was looked at before the checkpoint (`_checkpoint`)."""
        self.seen_ids: set[str] = set()
        """Resumed likewise: finished batches reported before the checkpoint, by id, until
        a listing shows them (one hidden meanwhile may come back)."""
        self.found: set[str] = set()
        """The ids of the batches this cycle's listing showed well."""
        self.top: int | None = None
        """The newest creation second this cycle's listing showed."""

    def begin_cycle(self) -> None:
        """Forget what the last cycle's listing showed."""
        self.found = set()
        self.top = None

    def follows(self, batch_id: str | None) -> bool:
        """Whether the watch is about this batch at all (`ids`)."""
        return self.ids is None or batch_id in self.ids

    def below_floor(self, batch: AnyBatch) -> bool:
        """Whether `batch` lies below what a cycle looks at: created in a second before the
        horizon's, or before `since`."""
        horizon, since = self.horizon, self.since
        return (horizon is not None and created_second(batch) < horizon) or (
            since is not None and created_moment(batch) < since
        )

    @property
    def has_floor(self) -> bool:
        """Whether a cycle stops anywhere before the end of the list."""
        return self.horizon is not None or self.since is not None

    def see(self, batch: AnyBatch, *, followed: bool = False) -> BatchEvent[Any] | None:
        """Compare a batch with what was known, keep it, and return the event it makes; a
        new batch below the floor is not followed, unless known to be (`followed`)."""
        previous = self.known.get(batch.id)
        if not self.follows(batch.id):
            return None
        if previous is None and not followed and self.below_floor(batch):
            return None
        if self.ids is not None and batch.is_finished:
            self.ended.add(batch.id)
        self.known[batch.id] = batch
        if previous is None and self._reported_before(batch):
            return None
        if previous is None:
            return BatchEvent("existing" if self.cycles == 0 else "created", batch)
        if previous != batch:
            return BatchEvent("updated", batch, previous, changed_fields(previous, batch))
        return None

    def _reported_before(self, batch: AnyBatch) -> bool:
        """Whether a resumed watch's checkpoint says this unknown batch was reported
        before, finished (it has not changed since)."""
        if not batch.is_finished:
            return False
        mark = self.seen_mark
        return batch.id in self.seen_ids or (mark is not None and created_second(batch) < mark)

    def read_page(
        self,
        fetched: FetchedPage[Any],
        on_invalid: OnInvalid,
        emit: Callable[[BatchEvent[Any]], None],
    ) -> bool:
        """Take in a page's batches down to the floor, emitting their events in order;
        whether the cycle ends with this page. Its malformed batches are judged by where
        they lay: see `_read_malformed`."""
        batches = fetched.parsed.batches
        stop = next((k for k, b in enumerate(batches) if self.below_floor(b)), len(batches))
        malformed: dict[int, list[APIResponseValidationError]] = {}
        invalid = zip(fetched.parsed.invalid, fetched.errors, strict=True)
        for before, (item, error) in enumerate(invalid):
            # Keyed by how many of the page's batches lay above it.
            malformed.setdefault(item.index - before, []).append(error)
        for index, batch in enumerate(batches[:stop]):
            self._read_malformed(malformed.pop(index, []), on_invalid, surely_above=True)
            self.found.add(batch.id)
            if self.top is None or created_second(batch) > self.top:
                self.top = created_second(batch)
            if (event := self.see(batch, followed=True)) is not None:  # above the floor
                emit(event)
        # Below the last batch above the floor, a malformed one may lie on either side.
        self._read_malformed(malformed.pop(stop, []), on_invalid, surely_above=not self.has_floor)
        for below in malformed.values():  # below the floor: not the watch's
            for error in below:
                skip_malformed(error)
        return stop < len(batches) or self.first_look_complete()

    def _read_malformed(
        self, errors: list[APIResponseValidationError], on_invalid: OnInvalid, *, surely_above: bool
    ) -> None:
        """Deal with malformed batches that lay together on a page. One the watch surely
        follows raises (`"raise"`); the others are skipped, and a followed one retrieved
        to read it or learn where it lies: a known one as the listing missed it, a new one
        until it reads well (or, one that may lie below the floor, until its retrieval too
        is malformed: a neighbour, as far as can be told)."""
        for error in errors:
            batch_id = error.batch_id
            if batch_id is None or not self.follows(batch_id):
                skip_malformed(error)
                continue
            if surely_above and on_invalid == "raise":
                raise error
            skip_malformed(error)
            if batch_id not in self.known:
                self.unreadable[batch_id] = self.unreadable.get(batch_id, False) or surely_above

    def first_look_complete(self) -> bool:
        """Watching named ids with no `since`, the first look may stop once it found them."""
        return (
            self.cycles == 0
            and self.ids is not None
            and self.since is None
            and self.ids <= self.found
        )

    def missing(self) -> list[str]:
        """What a cycle retrieves once its listing is done: the followed unfinished batches
        the listing did not show well, the unreadable ones, and on the first look the named
        ids it did not reach."""
        found = self.found
        missing = [i for i, batch in self.known.items() if not batch.is_finished and i not in found]
        missing += sorted(self.unreadable.keys() - self.known.keys())
        if self.cycles == 0 and self.ids is not None:
            missing += sorted(self.ids - found - self.known.keys() - self.unreadable.keys())
        return missing

    def retrieved(self, batch: AnyBatch) -> BatchEvent[Any] | None:
        """Take in a batch read by retrieval: followed by retrieval from now on (a batch
        listed malformed where the watch surely follows it, as followed)."""
        followed = self.unreadable.pop(batch.id, False)
        event = self.see(batch, followed=followed)
        self.by_retrieval.add(batch.id)
        return event

    def judge(self, batch_id: str, error: APIError, on_invalid: OnInvalid) -> Verdict:
        """What a failed retrieval of `batch_id` means (the one place that decides)."""
        if error.retryable:
            return "transient"
        if self.unreadable.get(batch_id) is False and isinstance(error, APIResponseValidationError):
            return "leave"  # listed malformed where it may lie below the floor: can't tell
        if skippable(error, on_invalid):
            return "skip"
        if isinstance(error, NotFoundError) and not (self.ids and batch_id in self.ids):
            return "gone"
        return "final"

    def failed(self, batch_id: str, verdict: Verdict) -> None:
        """Keep what a failed retrieval's verdict means: a gone batch is forgotten, and one
        that may not be followed is left be. A skipped one that exists is followed by
        retrieval, never pinning the horizon; one never yet read well stays unread, so
        that `until_finished` never ends on a batch whose state it does not know."""
        if verdict in ("gone", "leave"):
            self.unreadable.pop(batch_id, None)
        if verdict == "gone":
            self.known.pop(batch_id, None)
        elif verdict == "skip" and batch_id in self.known:
            self.by_retrieval.add(batch_id)

    def end_cycle(self) -> None:
        """Move the horizon once a cycle's listing and retrievals are done, and forget what
        lies below it."""
        self.cycles += 1
        # What the listing showed is known now; a batch it did not show (hidden for a while)
        # keeps its name, and the mark holds while it lies above the horizon.
        self.seen_ids -= self.found
        if self.top is not None and (self.newest is None or self.top > self.newest):
            self.newest = self.top
        self.by_retrieval.difference_update(self.found)
        unfinished = [
            created_second(batch)
            for batch_id, batch in self.known.items()
            if not batch.is_finished and batch_id not in self.by_retrieval
        ]
        if unfinished:
            self.horizon = min(unfinished)
        elif self.top is not None:
            self.horizon = self.top
        if self.horizon is None:
            return
        horizon = self.horizon
        if self.seen_mark is not None and self.seen_mark <= horizon:
            self.seen_mark = None  # nothing below the horizon is looked at again
        # Rebuilt rather than deleted from: a dict never shrinks, and after a first look at a
        # long history every later cycle would walk its emptied table.
        self.known = {
            batch_id: batch
            for batch_id, batch in self.known.items()
            if created_second(batch) >= horizon or not batch.is_finished
        }
        self.by_retrieval.intersection_update(
            i for i, batch in self.known.items() if not batch.is_finished
        )

    def named_all_finished(self) -> bool:
        """Whether the watch follows named ids only, and knows each of them finished."""
        named = self.ids
        return named is not None and named <= self.ended and not self.unreadable

    @property
    def all_finished(self) -> bool:
        """Whether no watched batch is unfinished (nor waiting to be read)."""
        return not self.unreadable and all(batch.is_finished for batch in self.known.values())
