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
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self, TypeVar

import attrs
from attrs import frozen

from . import _retry
from ._config import MAX_PAGE_SIZE, check_batch_id, check_count, check_seconds
from ._errors import APIError, APIResponseValidationError, APIStatusError, NotFoundError
from ._models import Batch
from ._response import Retrieved
from ._stream import BatchStream, InvalidPolicy, OnInvalid, check_on_invalid

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


class Source(Protocol):
    """What awaiting needs of a client: listing streams and single retrievals."""

    def _open_stream(
        self,
        *,
        limit: int,
        after: str | None,
        prefetch: int,
        max_items: int | None,
        on_invalid: InvalidPolicy = "raise",
    ) -> BatchStream: ...

    async def _retrieve(self, batch_id: str) -> Retrieved: ...


def check_ids(setting: str, ids: Iterable[object]) -> list[str]:
    """The ids as a list, each checked as `retrieve_batch` checks one, so that a bad id
    fails before any request instead of when its turn to be retrieved comes."""
    if isinstance(ids, str):
        raise TypeError(f"{setting} must be a sequence of batch ids, not one str")
    return [check_batch_id(f"{setting}[{index}]", batch_id) for index, batch_id in enumerate(ids)]


def hint_of(error: APIError) -> float | None:
    """The pause a failure's server asked for (`Retry-After`), if any."""
    return error.retry_after if isinstance(error, APIStatusError) else None


def skips(error: APIError, on_invalid: OnInvalid) -> bool:
    """Whether a failed retrieval is a malformed batch that `on_invalid` skips (logged)."""
    if not isinstance(error, APIResponseValidationError) or error.batch_id is None:
        return False
    if on_invalid == "raise":
        return False
    logger.warning("skipped a malformed batch: %s", error.message)
    return True


def deciding(errors: list[APIError]) -> APIError | None:
    """Of several requests' errors, the one to act on: a final one wins over transient
    ones (which a later try could pass), so no final error waits for another cycle."""
    return next((error for error in errors if not error.retryable), errors[0] if errors else None)


async def outcomes(coroutines: list[Coroutine[Any, Any, T]]) -> list[T | APIError]:
    """Run concurrently (the client's connection limit bounds them); each one's result or
    its API error, in order. Anything else (a bug, cancellation) cancels the rest and rises."""
    if not coroutines:
        return []
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(c, name="aiobatches retrieve") for c in coroutines]
    try:
        await asyncio.wait(tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    results: list[T | APIError] = []
    for task in tasks:
        error = task.exception()
        if error is None:
            results.append(task.result())
        elif isinstance(error, APIError):
            results.append(error)
        else:
            raise error
    return results


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
    unfinished batches the listing no longer shows, then rests. The work runs
    in the iterating task (one at a time); closing the watch (or leaving
    `async with`, or an error, or cancellation) closes the listing in flight.
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
        """Unfinished batches the listing stopped showing: retrieved each cycle instead,
        so that they never hold the horizon down."""
        self._horizon: int | None = None
        """The creation second later cycles list down to (inclusive); None: the whole list."""
        self._cycles = 0
        self._events: deque[BatchEvent] = deque()
        self._listing: BatchStream | None = None
        self._found: set[str] = set()
        """The ids this cycle's listing showed (a skipped malformed one included)."""
        self._top: int | None = None
        """The newest creation second this cycle's listing showed."""
        self._hint: float | None = None
        """The latest pause the server asked for; good for the next rest only."""
        self._rest_first = False
        """Whether the next cycle rests first: after any cycle but a first look's success."""
        self._busy = False
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchEvent:
        if self._busy:
            raise RuntimeError("another task is iterating this BatchWatch; one task at a time")
        self._busy = True
        try:
            while not self._events:
                if self._done:
                    raise StopAsyncIteration
                try:
                    await self._step()
                except BaseException:
                    await self.aclose()
                    raise
            return self._events.popleft()
        finally:
            self._busy = False

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
        """Stop watching: close the listing in flight; iteration then ends."""
        self._done = True
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
            try:
                page = await anext(self._listing.pages())
            except StopAsyncIteration:
                await self._end_cycle()
                return
            self._hint = self._listing._poll_after or self._hint
            self._found.update(i for i in self._listing.skipped if i is not None)
            for batch in page.data:
                if self._below_floor(batch):
                    await self._end_cycle()
                    return
                self._found.add(batch.id)
                self._top = max(self._top or batch.created_at, batch.created_at)
                self._see(batch)
            if self._first_look_complete():
                await self._end_cycle()
        except APIError as error:
            if not error.retryable:
                raise
            logger.warning("a watch cycle failed; trying again after a pause: %s", error)
            # What the cycle already saw made its events; the next try makes none for it again.
            self._hint = hint_of(error) or self._hint
            await self._close_listing()

    async def _begin_cycle(self) -> None:
        if self._rest_first:
            hint, self._hint = self._hint, None
            await _retry.sleep(_retry.pause(self._interval, hint))
            if self._done:
                return
        self._rest_first = True
        self._found = set()
        self._top = None
        self._listing = self._source._open_stream(
            limit=self._limit, after=None, prefetch=0, max_items=None, on_invalid=self._verdict
        )

    def _follows(self, batch_id: str | None) -> bool:
        return self._ids is None or batch_id in self._ids

    def _verdict(self, batch_id: str | None) -> OnInvalid:
        """A malformed batch the watch does not follow never blocks it: always skipped."""
        return self._on_invalid if self._follows(batch_id) else "skip"

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

    def _see(self, batch: Batch) -> None:
        """Compare a batch with what the watch knew, and queue the event it makes."""
        if not self._follows(batch.id) or (
            self._since is not None and batch.created_at < self._since
        ):
            return
        previous = self._known.get(batch.id)
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
        if self._done:
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
        if self._until_finished and not any(not b.is_finished for b in self._known.values()):
            self._done = True

    async def _retrieve_missing(self) -> None:
        """Retrieve the followed unfinished batches the listing did not show (and, on the
        first look, named ids it did not reach): found ones are followed by retrieval, gone
        ones dropped (an id named in `ids`: `NotFoundError`)."""
        missing = [
            batch_id
            for batch_id, batch in self._known.items()
            if not batch.is_finished and batch_id not in self._found
        ]
        if self._cycles == 0 and self._ids is not None:
            missing += sorted(self._ids - self._found - self._known.keys())
        results = await outcomes([self._source._retrieve(i) for i in missing])
        failures = []
        for batch_id, result in zip(missing, results, strict=True):
            if isinstance(result, Retrieved):
                self._hint = result.poll_after or self._hint
                self._see(result.batch)
                self._by_retrieval.add(batch_id)
            elif isinstance(result, NotFoundError) and not (self._ids and batch_id in self._ids):
                logger.warning("batch %s is gone (404); no longer watching it", batch_id)
                del self._known[batch_id]
            elif not skips(result, self._on_invalid):
                failures.append(result)
        if (failure := deciding(failures)) is not None:
            raise failure

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
