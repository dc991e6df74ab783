"""Awaiting batches: waiting for some to finish, and watching every change, at the cost of
what changed.

A finished batch never changes, and new batches appear on top of the newest-first
list. So after one look, a watch need only list down to the oldest batch that was
still unfinished (its *horizon*): everything older is final. A wait picks, per
poll, the cheaper of retrieving each unfinished id and relisting down to the
oldest one.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
from collections import deque
from collections.abc import Coroutine, Iterable, Sequence
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self, TypeVar

import attrs
from attrs import frozen

from . import _retry
from ._config import MAX_PAGE_SIZE, check_batch_id, check_count, check_seconds
from ._errors import APIConnectionError, APIError, APIStatusError
from ._models import Batch
from ._response import Retrieved
from ._stream import BatchStream

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
        """True on the event where the batch is first seen finished."""
        return self.batch.is_finished and (self.previous is None or not self.previous.is_finished)


def changed_fields(before: Batch, after: Batch) -> tuple[str, ...]:
    """The names of the fields that differ (an absent key and a null are the same: None)."""
    return tuple(name for name in _FIELDS if getattr(before, name) != getattr(after, name))


class _Source(Protocol):
    """What awaiting needs of a client: listing streams and single retrievals."""

    def _open_stream(
        self, *, limit: int, after: str | None, prefetch: int, max_items: int | None
    ) -> BatchStream: ...

    async def _retrieve(self, batch_id: str) -> Retrieved: ...


@frozen
class _Mark:
    """A batch's place in the newest-first list."""

    id: str
    created_at: int


def _unix(since: object) -> float | None:
    if since is None:
        return None
    if isinstance(since, datetime.datetime):
        if since.tzinfo is None:
            raise ValueError("since must be an aware datetime (with a tzinfo) or Unix seconds")
        return since.timestamp()
    if isinstance(since, bool) or not isinstance(since, int | float) or not math.isfinite(since):
        raise ValueError(f"since must be Unix seconds or an aware datetime, got {since!r}")
    return float(since)


def _is_transient(error: APIError) -> bool:
    """An error the retry policy would have retried: worth another cycle later."""
    if isinstance(error, APIConnectionError):
        return True
    return isinstance(error, APIStatusError) and (
        error.status_code in _retry.RETRYABLE_STATUSES or error.status_code >= 500
    )


class BatchWatch:
    """An async iterator of `BatchEvent` and an async context manager.

    Each cycle lists newest first down to its horizon, then sleeps. The work
    runs in the iterating task; closing the watch (or leaving `async with`,
    or an error, or cancellation) closes the listing in flight.
    """

    def __init__(
        self,
        source: _Source,
        *,
        poll_interval: float,
        since: float | datetime.datetime | None,
        ids: Iterable[str] | None,
        until_finished: bool,
        limit: int,
    ) -> None:
        self._source = source
        self._interval = check_seconds("poll_interval", poll_interval)
        self._since = _unix(since)
        self._ids = None if ids is None else frozenset(_check_ids("ids", ids))
        self._until_finished = until_finished
        self._limit = check_count("limit", limit, low=1, high=MAX_PAGE_SIZE)
        # What the watch knows: unfinished batches in full, finished ones by place only
        # (they never change), all at or above the horizon.
        self._known: dict[str, Batch | None] = {}
        self._places: dict[str, _Mark] = {}
        self._horizon: _Mark | None = None
        self._cycles = 0
        self._events: deque[BatchEvent] = deque()
        self._stream: BatchStream | None = None
        self._cycle_top: _Mark | None = None
        self._found: set[str] = set()
        self._poll_after: float | None = None
        self._rest_first = False
        """Whether the next cycle waits first: after any cycle but a first look's success."""
        self._done = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchEvent:
        while not self._events:
            if self._done:
                raise StopAsyncIteration
            try:
                await self._step()
            except BaseException:
                await self.aclose()
                raise
        return self._events.popleft()

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
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.aclose()

    async def _step(self) -> None:
        """Read the next page of the current cycle, or end it and begin the next."""
        if self._stream is None:
            await self._begin_cycle()
            return
        try:
            page = await anext(self._stream.pages())
        except StopAsyncIteration:
            await self._end_cycle()
            return
        except APIError as error:
            if not _is_transient(error):
                raise
            logger.warning("a watch cycle failed; trying again after the interval: %s", error)
            # The horizon stays and the cycle starts over after the interval: batches
            # it already saw make no second event.
            await self._close_listing()
            return
        if self._cycle_top is None and page.data:
            first = page.data[0]
            self._cycle_top = _Mark(first.id, first.created_at)
        self._poll_after = self._stream._poll_after
        for batch in page.data:
            if self._beyond_horizon(batch):
                await self._end_cycle()
                return
            self._see(batch)
            if self._at_horizon(batch):
                await self._end_cycle()
                return

    async def _begin_cycle(self) -> None:
        if self._rest_first:
            await _retry.sleep(max(self._interval, self._poll_after or 0.0))
        self._rest_first = True
        self._cycle_top = None
        self._found = set()
        self._stream = self._source._open_stream(
            limit=self._limit, after=None, prefetch=0, max_items=None
        )

    def _beyond_horizon(self, batch: Batch) -> bool:
        """Whether `batch` lies below what this cycle must look at."""
        if self._cycles == 0:
            return self._since is not None and batch.created_at < self._since
        horizon = self._horizon
        return horizon is not None and batch.created_at < horizon.created_at

    def _at_horizon(self, batch: Batch) -> bool:
        """Whether this cycle has now seen everything it must."""
        if self._cycles == 0:
            return self._ids is not None and self._since is None and self._ids <= self._found
        horizon = self._horizon
        return horizon is not None and batch.id == horizon.id

    def _see(self, batch: Batch) -> None:
        """Compare a listed batch with what the watch knew, and queue the event it makes."""
        self._found.add(batch.id)
        watched = self._ids is None or batch.id in self._ids
        if not watched:
            return
        self._places[batch.id] = _Mark(batch.id, batch.created_at)
        if batch.id not in self._known:
            kind: EventKind = "existing" if self._cycles == 0 else "created"
            self._events.append(BatchEvent(kind, batch))
        else:
            previous = self._known[batch.id]
            if previous is not None and previous != batch:
                changes = changed_fields(previous, batch)
                self._events.append(BatchEvent("updated", batch, previous, changes))
        self._known[batch.id] = None if batch.is_finished else batch

    async def _end_cycle(self) -> None:
        """Close the cycle's listing, move the horizon, and decide whether to go on."""
        await self._close_listing()
        if self._cycles == 0:
            await self._find_missing_ids()
        self._cycles += 1
        unfinished = [self._places[i] for i, batch in self._known.items() if batch is not None]
        if unfinished:
            self._horizon = min(unfinished, key=lambda mark: mark.created_at)
        elif self._cycle_top is not None:
            self._horizon = self._cycle_top
        self._forget_below_horizon()
        if self._until_finished and not unfinished:
            self._done = True

    async def _find_missing_ids(self) -> None:
        """Watched ids the first look did not reach: retrieved one by one (unknown: NotFound)."""
        if self._ids is None:
            return
        for batch_id in sorted(self._ids - self._found):
            retrieved = await self._source._retrieve(batch_id)
            self._see(retrieved.batch)

    def _forget_below_horizon(self) -> None:
        """Drop what lies below the horizon: it is finished and will never be listed again."""
        horizon = self._horizon
        if horizon is None:
            return
        # Rebuilt rather than deleted from: a dict never shrinks, and after a first look at a
        # long history every later cycle would walk its emptied table.
        self._places = {i: m for i, m in self._places.items() if m.created_at >= horizon.created_at}
        self._known = {i: self._known[i] for i in self._places}


def _check_ids(setting: str, ids: Iterable[object]) -> list[str]:
    """The ids as a list, each checked as `retrieve_batch` checks one, so that a bad id
    fails before any request instead of when its turn to be retrieved comes."""
    if isinstance(ids, str):
        raise TypeError(f"{setting} must be a sequence of batch ids, not one str")
    return [check_batch_id(f"{setting}[{index}]", batch_id) for index, batch_id in enumerate(ids)]


async def wait_for_batches(
    source: _Source,
    batch_ids: Sequence[str],
    *,
    poll_interval: float,
    timeout: float | None,  # noqa: ASYNC109 - the public contract's name for the deadline
    limit: int = 100,
) -> list[Batch]:
    """Poll until every batch is finished; the batches in the order given."""
    limit = check_count("limit", limit, low=1, high=MAX_PAGE_SIZE)
    waiter = _Waiter(source, _check_ids("batch_ids", batch_ids), limit)
    interval = check_seconds("poll_interval", poll_interval)
    if timeout is not None:
        check_seconds("timeout", timeout)
    async with asyncio.timeout(timeout):
        while True:
            await waiter.poll()
            if waiter.done:
                return waiter.results()
            await _retry.sleep(max(interval, waiter.poll_after or 0.0))


class _Waiter:
    """One `wait_for_batches`: the latest of each batch, and how deep the unfinished ones lie."""

    def __init__(self, source: _Source, ids: list[str], limit: int) -> None:
        self._source = source
        self._order = ids
        self._limit = limit
        self._latest: dict[str, Batch] = {}
        self._depth: int | None = None
        """Pages down to the oldest unfinished id at the last listing; None when unknown."""
        self.poll_after: float | None = None

    @property
    def done(self) -> bool:
        return all(i in self._latest and self._latest[i].is_finished for i in self._order)

    def results(self) -> list[Batch]:
        return [self._latest[i] for i in self._order]

    async def poll(self) -> None:
        """One poll: relist down to the oldest unfinished id, or retrieve each, whichever
        costs fewer requests; where the ids lie is learnt by listing while that is cheaper."""
        pending = list(dict.fromkeys(i for i in self._order if not self._finished(i)))
        if len(pending) == 1 or (self._depth is not None and self._depth >= len(pending)):
            missing = pending  # no listing can beat one request per id
        else:
            budget = None if self._depth is not None else len(pending)
            missing = await self._relist(pending, budget=budget)
        await self._retrieve(missing)

    def _finished(self, batch_id: str) -> bool:
        batch = self._latest.get(batch_id)
        return batch is not None and batch.is_finished

    async def _relist(self, pending: list[str], *, budget: int | None) -> list[str]:
        """List newest first until every pending id is found, or (with a budget) until a
        page costs as much as retrieving the ids still missing; returns those."""
        wanted = set(pending)
        pages = deepest = 0
        stream = self._source._open_stream(
            limit=self._limit, after=None, prefetch=0, max_items=None
        )
        async with stream:
            async for page in stream.pages():
                pages += 1
                for batch in page.data:
                    if batch.id in wanted:
                        wanted.discard(batch.id)
                        self._latest[batch.id] = batch
                        if not batch.is_finished:
                            deepest = pages
                self.poll_after = stream._poll_after or self.poll_after
                if not wanted or (budget is not None and pages >= len(wanted)):
                    break
        self._depth = None if wanted else deepest
        return [batch_id for batch_id in pending if batch_id in wanted]

    async def _retrieve(self, batch_ids: list[str]) -> None:
        """Retrieve each id concurrently (the client's connection limit bounds it)."""
        for retrieved in await _all([self._source._retrieve(i) for i in batch_ids]):
            self._latest[retrieved.batch.id] = retrieved.batch
            self.poll_after = retrieved.poll_after or self.poll_after


async def _all(coroutines: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; on the first error cancel and await the rest, then raise it as is."""
    if not coroutines:
        return []
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(c, name="aiobatches retrieve") for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
    return [task.result() for task in tasks]
