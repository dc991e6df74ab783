"""Watching batches: the cycles that list, retrieve and rest, run as the watch's own
work so that closing it stops everything at once. What the watch knows, and the
events changes make, is `_watchstate`'s.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Final, Self, TypeVar

from . import _retry
from ._chain import Walk
from ._closing import ClosedByExit
from ._config import MAX_PAGE_SIZE, check_count, check_seconds
from ._errors import APIError, APIResponseValidationError
from ._polling import Source, check_ids, hint_of, retrieve_all
from ._response import FetchedPage, Retrieved
from ._stream import OnInvalid, check_on_invalid, skip_malformed
from ._watchstate import BatchEvent, WatchState, unix_seconds

T = TypeVar("T")

logger: Final = logging.getLogger("aiobatches")


class BatchWatch(ClosedByExit):
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
        self._state = WatchState(
            since=unix_seconds(since),
            ids=None if ids is None else frozenset(check_ids("ids", ids)),
        )
        self._until_finished = until_finished
        self._limit = check_count("limit", limit, low=1, high=MAX_PAGE_SIZE)
        self._on_invalid = check_on_invalid(on_invalid)
        self._events: deque[BatchEvent] = deque()
        self._failure: APIError | None = None
        """The error that ends the watch, raised once the events before it are handed out."""
        self._listing: Walk | None = None
        self._found: set[str] = set()
        """The ids of the batches this cycle's listing showed well."""
        self._top: int | None = None
        """The newest creation second this cycle's listing showed."""
        self._hint: float | None = None
        """The latest pause the server asked for; good for the next rest only."""
        self._rest_first = False
        """Whether the next cycle rests first: after any cycle but a first look's success."""
        self._working: asyncio.Task[object] | None = None
        """The rest, page or retrievals in progress: a task that closing the watch cancels."""
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
            if self._read(fetched):
                await self._end_cycle()
        except APIError as error:
            if not error.retryable or self._closed:
                raise
            logger.warning("a watch cycle failed; trying again after a pause: %s", error)
            # What the cycle already saw made its events; the next try makes none for it again.
            self._hint = hint_of(error) or self._hint
            self._listing = None

    def _read(self, fetched: FetchedPage) -> bool:
        """Take in a page's batches down to the floor; whether the cycle ends with it.

        The page's malformed batches are judged by where they lay: see `_read_malformed`.
        """
        floor = self._state.floor()  # once per page: it moves only between cycles
        batches = fetched.parsed.batches
        stop = next(
            (k for k, b in enumerate(batches) if floor is not None and b.created_at < floor),
            len(batches),
        )
        malformed: dict[int, list[APIResponseValidationError]] = {}
        for before, (item, error) in enumerate(
            zip(fetched.parsed.invalid, fetched.errors, strict=True)
        ):
            # Keyed by how many of the page's batches lay above it.
            malformed.setdefault(item.index - before, []).append(error)
        for index, batch in enumerate(batches[:stop]):
            self._read_malformed(malformed.pop(index, []), surely_above=True)
            self._found.add(batch.id)
            if self._top is None or batch.created_at > self._top:
                self._top = batch.created_at
            self._queue(self._state.see(batch, followed=True))  # above the floor: followed
        # Below the last batch above the floor, a malformed one may lie on either side.
        self._read_malformed(malformed.pop(stop, []), surely_above=floor is None)
        for below in malformed.values():  # below the floor: not the watch's
            for error in below:
                skip_malformed(error)
        return stop < len(batches) or self._state.first_look_complete(self._found)

    def _read_malformed(
        self, errors: list[APIResponseValidationError], *, surely_above: bool
    ) -> None:
        """Deal with malformed batches that lay together on a page. One the watch surely
        follows raises (`"raise"`); the others are skipped, and a followed one retrieved
        to read it or learn where it lies: a known one as the listing missed it, a new one
        until it reads well (or, one that may lie below the floor, until its retrieval too
        is malformed: a neighbour, as far as can be told)."""
        for error in errors:
            batch_id = error.batch_id
            followed = batch_id is not None and self._state.follows(batch_id)
            if followed and surely_above and self._on_invalid == "raise":
                raise error
            skip_malformed(error)
            if batch_id is not None and followed:
                self._state.listed_malformed(batch_id, surely_followed=surely_above)

    def _queue(self, event: BatchEvent | None) -> None:
        if event is not None:
            self._events.append(event)

    async def _begin_cycle(self) -> None:
        if self._rest_first:
            hint, self._hint = self._hint, None
            await self._own(_retry.sleep(_retry.pause(self._interval, hint)), "rest")
            if self._closed:
                return
        self._rest_first = True
        self._found = set()
        self._top = None
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
        missing = self._state.missing(self._found)
        if missing:
            results = await self._own(
                retrieve_all(self._source, missing, final=self._final), "retrievals"
            )
            if results is None or self._closed:  # closed meanwhile, perhaps just after
                return
            self._take_retrieved(results)
        self._state.end_cycle(self._found, self._top)
        if self._until_finished and self._state.all_finished:
            self._done = True

    def _take_retrieved(self, results: list[tuple[str, Retrieved | APIError]]) -> None:
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
