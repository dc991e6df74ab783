"""Pagination and prefetch: `BatchStream` walks the cursor chain and owns its page task.

Pages chain (each cursor is the previous page's last item id), so at most one
request is in flight; up to `prefetch` fetched pages wait for the caller.
Every exit path (aclose, context exit, exhaustion, error, cancellation)
cancels and awaits the pending request. A stream that stopped early says so
on the next `anext()` instead of ending like a complete list. A malformed
batch raises after the batches before it, or is skipped with a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Final, Generic, Literal, Self

from attrs import evolve, frozen

from ._chain import CursorChain
from ._closing import ClosedByExit, CloseOnce, guarded, release
from ._converter import InvalidBatch
from ._errors import APIError, APIResponseValidationError
from ._models import B, BatchPage
from ._response import FetchedPage

logger: Final = logging.getLogger("aiobatches")

OnInvalid = Literal["raise", "skip"]


def check_on_invalid(on_invalid: object) -> OnInvalid:
    """`on_invalid` as given, if it is one of the two answers; else a ValueError."""
    if on_invalid == "raise" or on_invalid == "skip":  # noqa: PLR1714 - narrows to the Literal
        return on_invalid
    raise ValueError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")


def skip_malformed(error: APIError) -> None:
    """Say that a malformed batch is skipped, naming it and what is wrong."""
    logger.warning("skipped a malformed batch: %s", error.message)


@frozen
class _Queued(Generic[B]):
    """A fetched page waiting for the caller, with the invalid items found on it."""

    page: BatchPage[B]
    invalid: tuple[tuple[InvalidBatch, APIResponseValidationError], ...]
    """The invalid items handed over with the page: skipped, except the last when `raises`."""
    raises: bool
    """Whether the last invalid item ends the stream (after the page's batches)."""
    error: APIError | None = None
    """What ends the stream once the page's batches are handed out: the raising invalid
    item's error, or why the cursor chain cannot be followed."""


class BatchStream(ClosedByExit, Generic[B]):
    """An async iterator of batches (newest first) and an async context manager.

    Iterate it once with `async for`, or use `pages()` or `to_list()`. Leaving
    `async with`, `aclose()`, exhaustion, an error and cancellation all stop the
    prefetch. `cursor` is the id of the last batch handed out.
    """

    def __init__(
        self,
        fetch: Callable[[str | None, int], Awaitable[FetchedPage[B]]],
        *,
        limit: int,
        after: str | None,
        prefetch: int,
        max_items: int | None,
        on_invalid: OnInvalid = "raise",
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._fetch = fetch
        self._limit = limit
        self._prefetch = prefetch
        self._on_invalid = on_invalid
        self._on_close = on_close
        self._guard: AsyncGenerator[None, None] | None = None
        self._closing: CloseOnce | None = None
        self.skipped: list[str | None] = []
        """Ids of the malformed batches skipped so far (`on_invalid="skip"`); None if id-less."""
        # Requesting side: the cursor chain, the page request in flight, the pages waiting.
        self._chain = CursorChain(after=after, limit=limit, max_items=max_items)
        self._task: asyncio.Task[None] | None = None
        self._ready: deque[_Queued[B]] = deque()
        self._error: Exception | None = None
        # Consuming side: the current page, the next index in it, and items still to hand out.
        self._page: BatchPage[B] | None = None
        self._items: list[B] = []
        self._index = 0
        self._cursor_before = after
        self._to_hand_out = max_items
        self._stopped_early: str | None = None
        self._taking = False
        self._unsent = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<BatchStream cursor={self.cursor!r} {state}>"

    @property
    def cursor(self) -> str | None:
        """Id of the last batch handed out; `after=cursor` continues with no gap or repeat."""
        if self._index:
            return self._items[self._index - 1].id
        return self._cursor_before

    @property
    def closed(self) -> bool:
        """Whether the stream was closed (by `aclose()`, exhaustion, an error or its client)."""
        return self._closing is not None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> B:
        index = self._index
        if index < len(self._items):
            self._index = index + 1
            return self._items[index]
        while (page := await self._take_page()) is not None:
            if page.data:
                self._index = 1
                return page.data[0]
        raise StopAsyncIteration

    async def _anext_page(self) -> BatchPage[B]:
        """The rest of the current page if the caller began it, else the next whole page."""
        page = self._page
        if page is not None and self._index < len(self._items):
            rest = self._items[self._index :]
            self._index = len(self._items)
            return evolve(page, data=rest, first_id=rest[0].id)
        page = await self._take_page()
        if page is None:
            raise StopAsyncIteration
        self._index = len(page.data)
        return page

    def pages(self) -> PageIterator[B]:
        """Iterate whole `BatchPage` objects instead of batches, with the same prefetch."""
        return PageIterator(self)

    async def to_list(self) -> list[B]:
        """Collect every remaining batch into a list.

        If listing fails part way, the error carries what was collected as
        `error.partial`; `partial` plus a listing `after=error.cursor` is the whole list.
        """
        collected: list[B] = []
        try:
            async for batch in self:
                collected.append(batch)  # noqa: PERF401 - kept as it grows, for `partial`
        except APIError as error:
            error.partial = collected
            raise
        return collected

    async def aclose(self) -> None:
        """Cancel and await the pending page request; idempotent. Iteration then ends."""
        await self._shutdown(None)

    async def _shutdown(self, early: str | None) -> None:
        """Close; `early` says why if the list was cut short, for the next `anext()`.

        Every caller waits for the whole close, which runs on even if they are cancelled.
        """
        if self._closing is None:
            self._stopped_early = early
            self._ready.clear()
            self._cursor_before, self._items, self._index = self.cursor, [], 0
            self._page = None
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
            self._closing = CloseOnce(lambda: self._finish_close(task), "aiobatches stream close")
        await self._closing()

    async def _finish_close(self, task: asyncio.Task[None] | None) -> None:
        """Wait for the cancelled page request, then close what the stream owns."""
        if task is not None:
            await asyncio.wait({task})
        if self._on_close is not None:
            await self._on_close()
        if self._guard is not None:
            await release(self._guard)

    async def _take_page(self) -> BatchPage[B] | None:
        """Make the next page current and return it, or None at the end; closes on any exit."""
        if self._taking:
            raise RuntimeError("this BatchStream is already being iterated by another task")
        self._taking = True
        try:
            if self._on_close is not None and self._guard is None:
                # An owned client is closed even if the caller drops the stream unclosed.
                self._guard = await guarded(self, self._on_close)
            page = await self._next_page()
            if self._unsent:
                # Let the request just started go out before the caller works on
                # this page, so even blocking work overlaps with the server's time.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            await self._shutdown("its consumer was cancelled")
            raise
        except Exception as error:
            await self._shutdown(f"it failed with {type(error).__name__}")
            raise
        finally:
            self._taking = False
        if page is None:
            await self.aclose()
            return None
        self._cursor_before = self.cursor
        self._page = page
        self._items = page.data
        self._index = 0
        return page

    async def _next_page(self) -> BatchPage[B] | None:
        while not self._ready:
            if self.closed:
                self._refuse_if_stopped_early()
                return None
            if self._error is not None:
                raise self._error
            task = self._task
            if task is None:
                if self._chain.ended:
                    return None
                task = self._start()
            await asyncio.wait({task})
            if task.cancelled() and not self.closed:
                raise asyncio.CancelledError("the page request was cancelled from outside")
        queued = self._ready.popleft()
        self._top_up()
        return self._hand_over(queued)

    def _hand_over(self, queued: _Queued[B]) -> BatchPage[B]:
        """The page as the caller gets it: cut to `max_items`, its invalid items dealt with."""
        page = queued.page
        if self._to_hand_out is not None:  # cut to what `max_items` allows (a server may send more)
            if len(page.data) > self._to_hand_out:
                data = page.data[: self._to_hand_out]
                page = evolve(page, data=data, last_id=data[-1].id if data else None)
            self._to_hand_out -= len(page.data)
        cut = len(page.data) < len(queued.page.data) or self._to_hand_out == 0
        skipped = queued.invalid[:-1] if queued.raises else queued.invalid
        boundary = _raw_index(len(page.data), queued.invalid) if cut else None
        for invalid, error in skipped:
            if boundary is None or invalid.index < boundary:
                skip_malformed(error)
                self.skipped.append(invalid.batch_id)
        if queued.error is not None and not cut:  # the caller reaches the end: it ends here
            if queued.raises:
                queued.error.cursor = page.data[-1].id if page.data else self.cursor
            self._error = queued.error
            if not page.data:  # nothing to hand out before it
                raise queued.error
        return page

    def _refuse_if_stopped_early(self) -> None:
        """End quietly after a deliberate close; refuse to look complete after an early stop."""
        if self._stopped_early is None:
            return
        resume = "from the start" if self.cursor is None else f"with after={self.cursor!r}"
        raise RuntimeError(
            f"this BatchStream stopped early because {self._stopped_early};"
            f" list again {resume} to continue"
        )

    def _top_up(self) -> None:
        """Start the next request if the prefetch window has room."""
        if (
            self._task is None
            and self._error is None
            and not self.closed
            and len(self._ready) < self._prefetch
            and not self._chain.ended
        ):
            self._start()

    def _start(self) -> asyncio.Task[None]:
        """Request the next page in an owned task, asking only for items still wanted."""
        after, limit = self._chain.next_request()
        self._task = asyncio.get_running_loop().create_task(
            self._fetch_into_ready(after, limit), name=f"aiobatches page after {after}"
        )
        self._unsent = True
        return self._task

    async def _fetch_into_ready(self, after: str | None, limit: int) -> None:
        """The page task: fetch, check the chain, queue the page, and start the next one."""
        self._unsent = False
        try:
            fetched = await self._fetch(after, limit)
            queued = _queued(fetched, self._chain, self._on_invalid, after, limit)
        except Exception as error:  # noqa: BLE001 - handed to the consumer, in order
            self._error = error
            return
        finally:
            self._task = None  # also when cancelled: the task must not keep the stream alive
        self._ready.append(queued)
        self._top_up()


def _queued(
    fetched: FetchedPage[B],
    chain: CursorChain,
    on_invalid: OnInvalid,
    after: str | None,
    limit: int,
) -> _Queued[B]:
    """The page to queue, as the cursor chain and its malformed batches decide; moves the
    chain on (or ends it)."""
    parsed = fetched.parsed
    invalid = tuple(zip(parsed.invalid, fetched.errors, strict=True))
    raises = bool(invalid) and on_invalid == "raise"
    batches = parsed.batches
    error: APIError | None
    if raises:  # the first malformed batch ends the stream, after the batches before it
        invalid = invalid[:1]
        batches = batches[: invalid[0][0].index]
        chain.end()
        more, error = False, invalid[0][1]
    else:
        step = chain.advance(parsed, after, limit)
        more, error = step.more, step.error
        if not step.keep:
            batches, invalid = [], ()
    if invalid or not batches:
        first_id = batches[0].id if batches else None
        last_id = batches[-1].id if batches else None
    else:
        first_id = parsed.first_id or batches[0].id
        last_id = parsed.last_id or batches[-1].id
    page = BatchPage(batches, first_id, last_id, more)
    return _Queued(page, invalid, raises, error)


def _raw_index(
    kept: int, invalid: tuple[tuple[InvalidBatch, APIResponseValidationError], ...]
) -> int:
    """The position in the page's raw items just past its first `kept` valid batches."""
    position = kept
    for item, _ in invalid:
        if item.index < position:
            position += 1
    return position


class PageIterator(ClosedByExit, Generic[B]):
    """Iterates a stream page by page; closing it closes the stream."""

    def __init__(self, stream: BatchStream[B]) -> None:
        self._stream = stream

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchPage[B]:
        return await self._stream._anext_page()

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._stream.aclose()
