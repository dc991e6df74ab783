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
from types import TracebackType
from typing import Final, Literal, Self

from attrs import evolve, frozen

from ._closing import CloseOnce, close_when_collected, guard, release
from ._converter import InvalidBatch, ParsedPage
from ._errors import APIError, APIResponseValidationError, PaginationError
from ._models import Batch, BatchPage

logger: Final = logging.getLogger("aiobatches")

OnInvalid = Literal["raise", "skip"]
InvalidPolicy = OnInvalid | Callable[[str | None], OnInvalid]
"""What to do with a malformed batch: one answer for all, or one per batch id (None when
the batch has no usable id), as a watch skips the batches it does not follow."""


def check_on_invalid(on_invalid: object) -> OnInvalid:
    """`on_invalid` as given, if it is one of the two answers; else a ValueError."""
    if on_invalid == "raise" or on_invalid == "skip":  # noqa: PLR1714 - narrows to the Literal
        return on_invalid
    raise ValueError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")


@frozen
class FetchedPage:
    """A page as the client read it: its items, and the error to raise for each invalid one."""

    parsed: ParsedPage
    errors: tuple[APIResponseValidationError, ...]
    """One per `parsed.invalid`, in the same order."""
    poll_after: float | None = None
    """Seconds the server asked pollers to wait (`openai-poll-after-ms`), if it did."""


Fetch = Callable[[str | None, int], Awaitable[FetchedPage]]
"""Fetches the page after a cursor with a page size; errors carry that cursor."""


@frozen
class _Queued:
    """A fetched page waiting for the caller, with the invalid items found on it."""

    page: BatchPage
    invalid: tuple[tuple[InvalidBatch, APIResponseValidationError], ...]
    """The invalid items handed over with the page: skipped, except the last when `raises`."""
    raises: bool
    """Whether the last invalid item ends the stream (after the page's batches)."""


class BatchStream:
    """An async iterator of batches (newest first) and an async context manager.

    Iterate it once with `async for`, or use `pages()` or `to_list()`. Leaving
    `async with`, `aclose()`, exhaustion, an error and cancellation all stop the
    prefetch. `cursor` is the id of the last batch handed out.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        limit: int,
        after: str | None,
        prefetch: int,
        max_items: int | None,
        on_invalid: InvalidPolicy = "raise",
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
        self._page_skipped: tuple[tuple[int, APIResponseValidationError], ...] = ()
        """The malformed batches skipped on the latest page, each with how many of the page's
        batches came before it: where it lay, for a watch that stops part way down a page."""
        # Requesting side: the next cursor, cursors seen, and items still to request.
        self._next_after = after
        self._seen: set[str] = set() if after is None else {after}
        self._more = True
        self._to_request = max_items
        self._task: asyncio.Task[None] | None = None
        self._ready: deque[_Queued] = deque()
        self._error: Exception | None = None
        # Consuming side: the current page, the next index in it, and items still to hand out.
        self._page: BatchPage | None = None
        self._items: list[Batch] = []
        self._index = 0
        self._cursor_before = after
        self._to_hand_out = max_items
        self._stopped_early: str | None = None
        self._poll_after: float | None = None
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

    async def __anext__(self) -> Batch:
        index = self._index
        if index < len(self._items):
            self._index = index + 1
            return self._items[index]
        while (page := await self._take_page()) is not None:
            if page.data:
                self._index = 1
                return page.data[0]
        raise StopAsyncIteration

    async def _anext_page(self) -> BatchPage:
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

    def pages(self) -> PageIterator:
        """Iterate whole `BatchPage` objects instead of batches, with the same prefetch."""
        return PageIterator(self)

    async def to_list(self) -> list[Batch]:
        """Collect every remaining batch into a list.

        If listing fails part way, the error carries what was collected as
        `error.partial`; `partial` plus a listing `after=error.cursor` is the whole list.
        """
        collected: list[Batch] = []
        try:
            async for batch in self:
                collected.append(batch)  # noqa: PERF401 - kept as it grows, for `partial`
        except APIError as error:
            error.partial = collected
            raise
        return collected

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

    async def _watch_abandonment(self) -> None:
        """Make sure an owned client is closed even if the caller drops the stream unclosed."""
        if self._on_close is None or self._guard is not None:
            return
        self._guard = guard(self._on_close)
        await anext(self._guard)
        close_when_collected(self, self._guard)

    async def _take_page(self) -> BatchPage | None:
        """Make the next page current and return it, or None at the end; closes on any exit."""
        if self._taking:
            raise RuntimeError("this BatchStream is already being iterated by another task")
        self._taking = True
        try:
            await self._watch_abandonment()
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

    async def _next_page(self) -> BatchPage | None:
        while not self._ready:
            if self.closed:
                self._refuse_if_stopped_early()
                return None
            if self._error is not None:
                raise self._error
            task = self._task
            if task is None:
                if not self._may_request():
                    return None
                task = self._start()
            await asyncio.wait({task})
            if task.cancelled() and not self.closed:
                raise asyncio.CancelledError("the page request was cancelled from outside")
        queued = self._ready.popleft()
        self._top_up()
        return self._hand_over(queued)

    def _hand_over(self, queued: _Queued) -> BatchPage:
        """The page as the caller gets it: cut to `max_items`, its invalid items dealt with."""
        page = self._trimmed(queued.page)
        self._page_skipped = ()
        if not queued.invalid:
            return page
        cut = len(page.data) < len(queued.page.data) or self._to_hand_out == 0
        skipped = queued.invalid[:-1] if queued.raises else queued.invalid
        boundary = _raw_index(len(page.data), queued.invalid) if cut else None
        placed = []
        for before, (invalid, error) in enumerate(skipped):
            if boundary is None or invalid.index < boundary:
                logger.warning("skipped a malformed batch: %s", error.message)
                self.skipped.append(invalid.batch_id)
                placed.append((invalid.index - before, error))
        self._page_skipped = tuple(placed)
        if queued.raises and not cut:  # the caller reaches the malformed batch: it ends here
            error = queued.invalid[-1][1]
            error.cursor = page.data[-1].id if page.data else self.cursor
            self._error = error
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

    def _trimmed(self, page: BatchPage) -> BatchPage:
        """Cut a page to the items `max_items` still allows (a server may send more)."""
        if self._to_hand_out is None:
            return page
        if len(page.data) > self._to_hand_out:
            data = page.data[: self._to_hand_out]
            page = evolve(page, data=data, last_id=data[-1].id if data else None)
        self._to_hand_out -= len(page.data)
        return page

    def _may_request(self) -> bool:
        return self._more and (self._to_request is None or self._to_request > 0)

    def _top_up(self) -> None:
        """Start the next request if the prefetch window has room."""
        if (
            self._task is None
            and self._error is None
            and not self.closed
            and len(self._ready) < self._prefetch
            and self._may_request()
        ):
            self._start()

    def _start(self) -> asyncio.Task[None]:
        """Request the next page in an owned task, asking only for items still wanted."""
        limit = self._limit
        if self._to_request is not None:
            limit = min(limit, self._to_request)
        self._task = asyncio.get_running_loop().create_task(
            self._fetch_into_ready(self._next_after, limit),
            name=f"aiobatches page after {self._next_after}",
        )
        self._unsent = True
        return self._task

    async def _fetch_into_ready(self, after: str | None, limit: int) -> None:
        """The page task: fetch, check the chain, queue the page, and start the next one."""
        self._unsent = False
        try:
            fetched = await self._fetch(after, limit)
            queued = self._queue_entry(fetched, after, limit)
        except Exception as error:  # noqa: BLE001 - handed to the consumer, in order
            self._error = error
            return
        finally:
            self._task = None  # also when cancelled: the task must not keep the stream alive
        self._ready.append(queued)
        self._top_up()

    def _queue_entry(self, fetched: FetchedPage, after: str | None, limit: int) -> _Queued:
        """The page to queue; advances the request cursor unless a malformed batch ends here."""
        parsed = fetched.parsed
        if fetched.poll_after is not None:
            self._poll_after = fetched.poll_after
        invalid = tuple(zip(parsed.invalid, fetched.errors, strict=True))
        # A server that omits `has_more` (Azure's spec, some others) has more while pages are full.
        more = parsed.has_more if parsed.has_more is not None else parsed.count >= limit
        raising = next((k for k, (item, _) in enumerate(invalid) if self._raises(item)), None)
        raises = raising is not None
        batches = parsed.batches
        if raising is not None:
            invalid = invalid[: raising + 1]
            # Of the items before the raising one, `raising` are invalid and the rest valid.
            batches = batches[: invalid[raising][0].index - raising]
            self._more = False
        elif more and parsed.count and (parsed.last_item_id or parsed.last_id) is None:
            # Nothing to continue after: hand out the page's batches, then say why it ends.
            self._more = more = False
            self._error = PaginationError(
                f"the page after {after!r} claims more, but its last item has no id to continue"
                " after",
                cursor=batches[-1].id if batches else after,
            )
        else:
            self._advance_cursor(parsed, after, more=more)
        if invalid:
            first_id = batches[0].id if batches else None
            last_id = batches[-1].id if batches else None
        else:
            first_id = parsed.first_id or (batches[0].id if batches else None)
            last_id = parsed.last_id or (batches[-1].id if batches else None)
        page = BatchPage(batches, first_id, last_id, more and not raises)
        return _Queued(page, invalid, raises)

    def _raises(self, item: InvalidBatch) -> bool:
        """Whether this malformed batch ends the stream rather than being skipped."""
        policy = self._on_invalid
        return (policy if isinstance(policy, str) else policy(item.batch_id)) == "raise"

    def _advance_cursor(self, parsed: ParsedPage, after: str | None, *, more: bool) -> None:
        """Move the request cursor to the page's last item id, refusing chains that cannot end."""
        if self._to_request is not None:
            # Only batches handed out count: one skipped malformed leaves room for another.
            self._to_request -= len(parsed.batches)
        if not more:
            self._more = False
            return
        if not parsed.count:
            raise PaginationError(
                f"the page after {after!r} has no batches but claims has_more=true",
                cursor=after,
            )
        cursor = parsed.last_item_id or parsed.last_id
        assert cursor is not None  # _queue_entry ended the stream on a page without one
        if cursor in self._seen:
            raise PaginationError(
                f"the page after {after!r} ends at {cursor!r}, a cursor seen before;"
                " following it would loop",
                cursor=after,
            )
        self._seen.add(cursor)
        self._next_after = cursor


def _raw_index(
    kept: int, invalid: tuple[tuple[InvalidBatch, APIResponseValidationError], ...]
) -> int:
    """The position in the page's raw items just past its first `kept` valid batches."""
    position = kept
    for item, _ in invalid:
        if item.index < position:
            position += 1
    return position


class PageIterator:
    """Iterates a stream page by page; closing it closes the stream."""

    def __init__(self, stream: BatchStream) -> None:
        self._stream = stream

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> BatchPage:
        return await self._stream._anext_page()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stream.aclose()

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._stream.aclose()
