"""Watching batches: every change reported once, at the cost of what changed.

A finished batch never changes, and new batches appear on top of the newest-first
list. So after one look, a cycle need only list down to its *horizon*: the oldest
creation second among the batches that were unfinished (or the newest known
second when none was), and past every batch created in that second, since the
server lists batches of one second in any order. Invariant after each cycle:
every followed batch the server still lists or retrieves is known as it is now,
every batch the watch holds was created at or after the horizon (or is
unfinished and followed by retrieval), and each change made exactly one event.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar

import attrs
from attrs import frozen

from . import _retry
from ._config import MAX_PAGE_SIZE, check_count, check_seconds
from ._errors import APIError, APIResponseValidationError, NotFoundError
from ._models import Batch
from ._polling import Source, check_ids, hint_of, retrieve_all, skippable
from ._response import Retrieved
from ._stream import BatchStream, OnInvalid, check_on_invalid

T = TypeVar("T")

logger: Final = logging.getLogger("aiobatches")

EventKind = Literal["existing", "created", "updated"]
_FIELDS: Final = tuple(field.name for field in attrs.fields(Batch))


@frozen
class BatchEvent:
    """What a watch saw happen to one batch.

    `kind` is `"existing"` for a batch found by the first look, `"created"` for
    one seen for the first time later, `"updated"` for one that differs from
    the last time (`previous`, and `changes`: the names of the fields that differ).
    """

    kind: EventKind
    """`"existing"`, `"created"` or `"updated"`, as above."""
    batch: Batch
    """The batch as it is now."""
    previous: Batch | None = None
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


def changed_fields(before: Batch, after: Batch) -> tuple[str, ...]:
    """The names of the fields that differ (an absent key and a null are the same: None)."""
    return tuple(name for name in _FIELDS if getattr(before, name) != getattr(after, name))


def _unix(since: object) -> float | None:
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


class BatchWatch:
    """An async iterator of `BatchEvent` and an async context manager.

    Each cycle lists newest first down to its horizon, retrieves the followed
    unfinished batches the listing does not show, then rests. The work runs in
    the iterating task (one at a time); closing the watch (or leaving `async
    with`, or an error, or cancellation) stops it at once, its rest included.
    """

    def __init__(
        self,
        source: Source,
        *,
        poll_interval: float,
        since: float | datetime.datetime | None,
        ids: Iterable[str] | None,
        until_finished: bool,
        limit: int,
        on_invalid: OnInvalid = "raise",
    ) -> None:
        self._source = source
        self._interval = check_seconds("poll_interval", poll_interval)
        self._since = _unix(since)
        self._ids = None if ids is None else frozenset(check_ids("ids", ids))
        self._until_finished = until_finished
        self._limit = check_count("limit", limit, low=1, high=MAX_PAGE_SIZE)
        self._on_invalid = check_on_invalid(on_invalid)
        self._known: dict[str, Batch] = {}
        """Every batch the watch holds, as last seen: the followed ones at or above the
        horizon, and the unfinished ones followed by retrieval."""
        self._by_retrieval: set[str] = set()
        """Unfinished batches the listing stopped showing (or shows malformed): retrieved
        each cycle instead, so that they never hold the horizon down."""
        self._unreadable: dict[str, bool] = {}
        """Batches never yet read well (listed malformed), retrieved to read them: whether
        the watch surely follows them (then unfinished until read), or only may."""
        self._horizon: int | None = None
        """The creation second later cycles list down to (inclusive); None: the whole list."""
        self._cycles = 0
        self._events: deque[BatchEvent] = deque()
        self._failure: APIError | None = None
        """The error that ends the watch, raised once the events before it are handed out."""
        self._listing: BatchStream | None = None
        self._found: set[str] = set()
        """The ids this cycle's listing showed (a malformed one included)."""
        self._top: int | None = None
        """The newest creation second this cycle's listing showed."""
        self._hint: float | None = None
        """The latest pause the server asked for; good for the next rest only."""
        self._rest_first = False
        """Whether the next cycle rests first: after any cycle but a first look's success."""
        self._working: asyncio.Task[Any] | None = None
        """The rest or the retrievals in progress: a task closing the watch cancels."""
        self._busy = False
        self._done = False
        """No cycle follows (`until_finished` met, or closed); queued events still go out."""
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchEvent:
        if self._busy:
            raise RuntimeError("another task is iterating this BatchWatch; one task at a time")
        self._busy = True
        try:
            while not self._events:
                if self._failure is not None:
                    failure, self._failure = self._failure, None
                    await self.aclose()
                    raise failure
                if self._done or self._closed:
                    raise StopAsyncIteration
                await self._advance()
            return self._events.popleft()
        finally:
            self._busy = False

    async def _advance(self) -> None:
        """One step of work; an error that ends the watch waits for the events before it
        (and one met because the watch was closed meanwhile is no error at all)."""
        try:
            await self._step()
        except APIError as error:
            if not self._closed:
                self._failure = error
            self._done = True
            await self._close_listing()
        except BaseException:
            await self.aclose()
            raise

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop watching: end a rest at once, close the listing in flight; iteration ends,
        and events not yet handed out are dropped."""
        self._closed = self._done = True
        self._events.clear()
        working, self._working = self._working, None
        if working is not None:
            working.cancel()
            await asyncio.wait({working})
        await self._close_listing()

    async def _close_listing(self) -> None:
        listing, self._listing = self._listing, None
        if listing is not None:
            await listing.aclose()

    async def _step(self) -> None:
        """Read the next page of the current cycle, or end the cycle, or begin the next."""
        try:
            if self._listing is None:
                await self._begin_cycle()
                return
            listing = self._listing
            try:
                page = await anext(listing.pages())
            except StopAsyncIteration:
                await self._end_cycle()
                return
            self._hint = listing._poll_after or self._hint
            floor = self._floor()  # once per page: it moves only between cycles
            stop = next(
                (k for k, b in enumerate(page.data) if floor is not None and b.created_at < floor),
                len(page.data),
            )
            for index, batch in enumerate(page.data[:stop]):
                self._read_malformed(listing, index, surely_above=True)
                self._found.add(batch.id)
                if self._top is None or batch.created_at > self._top:
                    self._top = batch.created_at
                self._see(batch, followed=True)  # above the floor: followed, if in `ids`
            # Below the last batch above the floor, a malformed one may lie on either side.
            self._read_malformed(listing, stop, surely_above=False)
            if stop < len(page.data) or self._first_look_complete():
                await self._end_cycle()
        except APIError as error:
            if not error.retryable or self._closed:
                raise
            logger.warning("a watch cycle failed; trying again after a pause: %s", error)
            # What the cycle already saw made its events; the next try makes none for it again.
            self._hint = hint_of(error) or self._hint
            await self._close_listing()

    def _read_malformed(self, listing: BatchStream, before: int, *, surely_above: bool) -> None:
        """Deal with the malformed batches that lay just above the page's batch `before`
        (the listing skipped them all). One the watch surely follows raises (`"raise"`);
        otherwise it is retrieved, to read it or learn where it lies: a known one as the
        listing missed it, a new one until it reads well (or, one that may lie below the
        floor, until its retrieval too is malformed: a neighbour, as far as can be told)."""
        surely_above = surely_above or self._floor() is None
        for place, error in listing._page_skipped:
            batch_id = error.batch_id
            if place != before or batch_id is None or not self._follows(batch_id):
                continue
            if surely_above and self._on_invalid == "raise":
                raise error
            if batch_id not in self._known:
                self._unreadable[batch_id] = self._unreadable.get(batch_id, False) or surely_above

    async def _begin_cycle(self) -> None:
        if self._rest_first:
            hint, self._hint = self._hint, None
            await self._rest(_retry.pause(self._interval, hint))
            if self._closed:
                return
        self._rest_first = True
        self._found = set()
        self._top = None
        # Every malformed batch is skipped by the listing; the watch decides which it follows.
        self._listing = self._source._open_stream(
            limit=self._limit, after=None, prefetch=0, max_items=None, on_invalid="skip"
        )

    async def _rest(self, delay: float) -> None:
        """Sleep between cycles in a task of the watch's own, which closing it ends at once."""
        self._working = asyncio.get_running_loop().create_task(
            _retry.sleep(delay), name="aiobatches watch rest"
        )
        await self._own(self._working)

    async def _own(self, task: asyncio.Task[T]) -> T | None:
        """The result of work the watch runs as its own task (a sleeper's or a request's
        error included), or None when closing the watch cancelled it."""
        try:
            await asyncio.wait({task})
        finally:
            self._working = None
            if not task.done():  # the consumer itself was cancelled
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled() and self._closed:
            return None
        return task.result()  # its error, or a cancellation from within, reaches the consumer

    def _follows(self, batch_id: str | None) -> bool:
        return self._ids is None or batch_id in self._ids

    def _floor(self) -> float | None:
        """The oldest creation time this cycle looks at: the horizon and `since`."""
        floors = [f for f in (self._horizon, self._since) if f is not None]
        return max(floors) if floors else None

    def _below_floor(self, batch: Batch) -> bool:
        floor = self._floor()
        return floor is not None and batch.created_at < floor

    def _first_look_complete(self) -> bool:
        """Watching named ids with no `since`, the first look may stop once it found them."""
        return (
            self._cycles == 0
            and self._ids is not None
            and self._since is None
            and self._ids <= self._found
        )

    def _see(self, batch: Batch, *, followed: bool = False) -> None:
        """Compare a batch with what the watch knew, and queue the event it makes; a new
        batch below the floor is not followed, unless known to be (`followed`)."""
        previous = self._known.get(batch.id)
        if not self._follows(batch.id) or (
            previous is None and not followed and self._below_floor(batch)
        ):
            return
        if previous is None:
            kind: EventKind = "existing" if self._cycles == 0 else "created"
            self._events.append(BatchEvent(kind, batch))
        elif previous != batch:
            changes = changed_fields(previous, batch)
            self._events.append(BatchEvent("updated", batch, previous, changes))
        self._known[batch.id] = batch

    async def _end_cycle(self) -> None:
        """Close the listing, retrieve what it did not show, move the horizon, forget what
        lies below it, and decide whether to go on."""
        await self._close_listing()
        if self._closed:
            return
        await self._retrieve_missing()
        self._cycles += 1
        self._by_retrieval.difference_update(self._found)
        unfinished = [
            batch.created_at
            for batch_id, batch in self._known.items()
            if not batch.is_finished and batch_id not in self._by_retrieval
        ]
        if unfinished:
            self._horizon = min(unfinished)
        elif self._top is not None:
            self._horizon = self._top
        self._forget_below_horizon()
        if (
            self._until_finished
            and not self._unreadable
            and all(batch.is_finished for batch in self._known.values())
        ):
            self._done = True

    async def _retrieve_missing(self) -> None:
        """Retrieve the followed unfinished batches the listing did not show well (and, on
        the first look, named ids it did not reach): found ones are followed by retrieval,
        gone ones dropped (an id named in `ids`: `NotFoundError`)."""
        missing = [
            batch_id
            for batch_id, batch in self._known.items()
            if not batch.is_finished and batch_id not in self._found
        ]
        missing += sorted(self._unreadable.keys() - self._known.keys())
        if self._cycles == 0 and self._ids is not None:
            missing += sorted(
                self._ids - self._found - self._known.keys() - self._unreadable.keys()
            )
        if not missing:
            return
        retrieving = retrieve_all(self._source, missing, final=self._final)
        working = self._working = asyncio.get_running_loop().create_task(
            retrieving, name="aiobatches watch retrievals"
        )
        results = await self._own(working)
        if results is None:  # closed meanwhile
            return
        transient = []
        for batch_id, result in results:
            if isinstance(result, Retrieved):
                self._hint = result.poll_after or self._hint
                self._see(result.batch, followed=self._unreadable.pop(batch_id, False))
                self._by_retrieval.add(batch_id)
            elif isinstance(result, NotFoundError):
                logger.warning("batch %s is gone (404); no longer watching it", batch_id)
                self._known.pop(batch_id, None)
                self._unreadable.pop(batch_id, None)
            elif self._only_maybe_followed(batch_id, result):
                self._unreadable.pop(batch_id)
            elif skippable(result, self._on_invalid):
                logger.warning("skipped a malformed batch: %s", result.message)
                if batch_id in self._known:
                    self._by_retrieval.add(batch_id)  # it exists: it must not pin the horizon
            else:
                transient.append(result)
        if transient:
            raise transient[0]

    def _final(self, batch_id: str, error: APIError) -> bool:
        """Whether a retrieval's error ends the watch: neither transient, nor a 404 of a
        batch not named in `ids` (dropped), nor a malformed batch `on_invalid` skips."""
        if (
            error.retryable
            or skippable(error, self._on_invalid)
            or self._only_maybe_followed(batch_id, error)
        ):
            return False
        return not isinstance(error, NotFoundError) or bool(self._ids and batch_id in self._ids)

    def _only_maybe_followed(self, batch_id: str, error: APIError) -> bool:
        """Whether a retrieval found malformed a batch that may lie below the floor: the
        watch cannot tell it is one it follows, and leaves it be."""
        return self._unreadable.get(batch_id) is False and isinstance(
            error, APIResponseValidationError
        )

    def _forget_below_horizon(self) -> None:
        """Drop what lies below the horizon: finished, and never listed again."""
        horizon = self._horizon
        if horizon is None:
            return
        # Rebuilt rather than deleted from: a dict never shrinks, and after a first look at a
        # long history every later cycle would walk its emptied table.
        self._known = {
            batch_id: batch
            for batch_id, batch in self._known.items()
            if batch.created_at >= horizon or not batch.is_finished
        }
        self._by_retrieval.intersection_update(
            i for i, batch in self._known.items() if not batch.is_finished
        )
