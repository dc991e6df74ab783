"""Watching batches: the cycles that list, retrieve and rest, run as the watch's own
work so that closing it stops everything at once. What the watch knows, and the
events changes make, is `_watchstate`'s.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import deque
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, Final, Generic, Self, TypeVar

from . import _checkpoint, _retry
from ._chain import Walk
from ._closing import ClosedByExit
from ._config import check_batch_id, check_count, check_seconds
from ._errors import APIError
from ._models import B
from ._polling import Source, check_ids, hint_of, retrieve_all
from ._response import Retrieved
from ._stream import OnInvalid, check_on_invalid, skip_malformed
from ._wakeups import Wakeups
from ._watchstate import BatchEvent, WatchState, unix_seconds

T = TypeVar("T")

logger: Final = logging.getLogger("aiobatches")


class BatchWatch(ClosedByExit, Generic[B]):
    """An async iterator of `BatchEvent` and an async context manager.

    Each cycle lists newest first down to its horizon, retrieves the followed
    unfinished batches the listing does not show, then rests; `notify()` ends a
    rest at once to retrieve one batch. The work runs in the iterating task (one
    at a time); closing the watch (or leaving `async with`, or an error, or
    cancellation) stops it at once, its rest included.
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
        resume: Mapping[str, Any] | None = None,
    ) -> None:
        self._source = source
        self._interval = check_seconds("poll_interval", poll_interval)
        if resume is None:
            named = None if ids is None else frozenset(check_ids("ids", ids))
            self._state = WatchState(since=unix_seconds(since), ids=named)
        elif since is not None or ids is not None:
            raise ValueError("resume carries the watch's since and ids: give neither with it")
        else:
            self._state = _checkpoint.load(resume, source.dialect)
        self._until_finished = until_finished
        self._limit = check_count("limit", limit, low=1, high=source.dialect.max_limit)
        self._on_invalid = check_on_invalid(on_invalid)
        self._events: deque[BatchEvent[B]] = deque()
        self._failure: APIError | None = None
        """The error that ends the watch, raised once the events before it are handed out."""
        self._listing: Walk | None = None
        self._hint: float | None = None
        """The latest pause the server asked for; good for the next rest only."""
        self._rest_first = False
        """Whether the next cycle rests first: after any cycle but a first look's success."""
        self._cycle_at: float | None = None
        """When the rest under way ends and the next cycle begins (`_retry.now()` time)."""
        self._wakeups = Wakeups()
        self._first_told: set[str] = set()
        """The batches the first look reported so far, while its events are not all out."""
        self._working: asyncio.Task[object] | None = None
        """The rest, page or retrievals in progress: a task that closing the watch cancels."""
        self._busy = False
        self._done = False
        """No cycle follows (`until_finished` met, or closed); queued events still go out."""
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchEvent[B]:
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
            event = self._events.popleft()
            if event.kind == "existing":
                self._first_told.add(event.batch.id)
            if self._state.cycles and not (self._events and self._events[0].kind == "existing"):
                self._first_told.clear()  # the first look is out: the state says the rest
            return event
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
            self._listing = None
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop watching: end a rest at once, close the listing in flight; iteration ends,
        and events not yet handed out are dropped."""
        self._closed = self._done = True
        self._events.clear()
        self._failure = None
        self._listing = None
        working = self._working  # left for `_own` to clear, so that every caller waits for it
        if working is not None:
            working.cancel()
            await asyncio.wait({working})

    async def _step(self) -> None:
        """Read the next page of the current cycle, or end the cycle, or begin the next."""
        try:
            if self._listing is None:
                await self._begin_cycle()
                return
            fetched = await self._own(self._listing.next_page(), "page")
            if self._closed:
                return
            if fetched is None:
                await self._end_cycle()
                return
            self._hint = fetched.poll_after or self._hint
            ends = self._state.read_page(fetched, self._on_invalid, self._queue)
            if ends or self._listing.exhausted:  # the cycle ends with the page it reads
                await self._end_cycle()
        except APIError as error:
            if not error.retryable or self._closed:
                raise
            logger.warning("a watch cycle failed; trying again after a pause: %s", error)
            # What the cycle already saw made its events; the next try makes none for it again.
            self._hint = hint_of(error) or self._hint
            self._listing = None

    def _queue(self, event: BatchEvent[B] | None) -> None:
        if event is not None:
            self._events.append(event)

    def checkpoint(self) -> dict[str, Any]:
        """The watch's state as the events handed out so far tell it, as a small JSON-able
        dict: save it after handling events, and `watch_batches(resume=...)` goes on from
        it after a restart, with no flood of `"existing"` and nothing missed."""
        return _checkpoint.dump(self._state, self._events, self._first_told, self._source.dialect)

    def notify(self, batch_id: str) -> None:
        """Have the watch retrieve this batch now (a webhook said it finished, say) rather
        than at its next cycle: the change, if any, is the next event.

        Call it from the watch's event loop. Repeats coalesce, a batch the watch does not
        follow is ignored, and duplicate or late news makes no duplicate event (the watch
        compares states). Beyond 1,000 pending, the watch runs one ordinary cycle instead.
        """
        check_batch_id("batch_id", batch_id)
        if not self._done and self._state.follows(batch_id):
            self._wakeups.add(batch_id)

    async def _begin_cycle(self) -> None:
        if self._rest_first:
            if self._cycle_at is None:
                hint, self._hint = self._hint, None
                left = _retry.pause(self._interval, hint)
                self._cycle_at = _retry.now() + left
            else:  # a rest that notifications broke: what remains of it
                left = self._cycle_at - _retry.now()
            while not self._wakeups.flooded:  # a rest is always taken, even of no time
                if self._wakeups.pending:
                    await self._retrieve(self._wakeups.take())
                    if self._until_finished and self._state.named_all_finished():
                        self._done = True
                    if self._events or self._done:
                        return  # hand them out first; the rest goes on after
                elif await self._own(self._wakeups.rest(max(left, 0.0)), "rest"):
                    break  # slept through
                if self._closed:
                    return
                left = self._cycle_at - _retry.now()
                if left <= 0:
                    break
        self._cycle_at = None
        self._wakeups.settle()
        self._rest_first = True
        self._state.begin_cycle()
        self._listing = Walk(self._source.fetch_page, self._limit)

    async def _own(self, work: Coroutine[object, None, T], what: str) -> T | None:
        """The result of work the watch runs as its own task (a rest, a page, retrievals),
        or None when closing the watch cancelled it; its error reaches the consumer."""
        task = self._working = asyncio.get_running_loop().create_task(
            work, name=f"aiobatches watch {what}"
        )
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

    async def _end_cycle(self) -> None:
        """Retrieve what the listing did not show, move the horizon, and decide whether to
        go on."""
        self._listing = None
        if self._closed:
            return
        if not await self._retrieve(self._state.missing()):
            return
        self._state.end_cycle()
        if self._until_finished and self._state.all_finished:
            self._done = True

    async def _retrieve(self, batch_ids: list[str]) -> bool:
        """Retrieve these batches as the watch's own work, and take in what they say;
        False when closing the watch stopped them (perhaps just after they ended)."""
        if batch_ids:
            retrieving = retrieve_all(self._source, batch_ids, final=self._final)
            results = await self._own(retrieving, "retrievals")
            if results is None or self._closed:
                return False
            self._take_retrieved(results)
        return True

    def _take_retrieved(self, results: list[tuple[str, Retrieved[Any] | APIError]]) -> None:
        """Take in each retrieval's batch or failure, as the watch state judges it; a
        transient failure ends the cycle afterwards (a final one was raised already)."""
        state, transient = self._state, []
        for batch_id, result in results:
            if isinstance(result, Retrieved):
                self._hint = result.poll_after or self._hint
                self._queue(state.retrieved(result.batch))
                continue
            verdict = state.judge(batch_id, result, self._on_invalid)
            if verdict == "transient":
                transient.append(result)
                continue
            if verdict == "gone":
                logger.warning("batch %s is gone (404); no longer watching it", batch_id)
            elif verdict == "skip":
                skip_malformed(result)
            state.failed(batch_id, verdict)
        if transient:
            raise transient[0]

    def _final(self, batch_id: str, error: APIError) -> bool:
        """Whether a retrieval's error ends the watch at once, as the watch state judges."""
        return self._state.judge(batch_id, error, self._on_invalid) == "final"
