"""The cursor chain's rules, with no I/O: which page to ask for next, and what a fetched
page means for the chain.

Each cursor is the previous page's last item id. A server that omits `has_more`
has more while its pages are full. A page that claims more but cannot be
followed (no items, no id to continue after, a cursor seen before) ends the
chain with a `PaginationError`: never an endless loop, never a silently short list.
`Walk` follows a chain one page at a time, for the awaiting code's listings.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from attrs import frozen

from ._converter import ParsedPage
from ._errors import PaginationError
from ._response import FetchedPage

Fetch = Callable[[str | None, int], Awaitable[FetchedPage[Any]]]
"""Fetches the page after a cursor with a page size; errors carry that cursor."""


@frozen
class Step:
    """What a fetched page means for the chain."""

    more: bool
    """Whether another page follows this one."""
    error: PaginationError | None = None
    """Why the chain cannot be followed past this page, raised after the page's batches."""
    keep: bool = True
    """Whether the page's batches are handed out before `error` (not when they repeat)."""


class CursorChain:
    """Where a listing stands: the next cursor, the cursors seen, and the batches still
    wanted (`max_items`), so that no page is requested that is not needed."""

    def __init__(self, *, after: str | None, limit: int, max_items: int | None) -> None:
        self._after = after
        self._limit = limit
        self._wanted = max_items
        self._seen: set[str] = set() if after is None else {after}
        self._more = True

    @property
    def ended(self) -> bool:
        """Whether no page is left to request."""
        return not self._more or (self._wanted is not None and self._wanted <= 0)

    def next_request(self) -> tuple[str | None, int]:
        """The cursor and the page size of the next page: only as many as still wanted."""
        limit = self._limit if self._wanted is None else min(self._limit, self._wanted)
        return self._after, limit

    def end(self) -> None:
        """Request nothing more (a malformed batch ends the listing on this page)."""
        self._more = False

    def advance(self, parsed: ParsedPage[Any], after: str | None, limit: int) -> Step:
        """Take in the page fetched with `after` and `limit`, and say what it means."""
        more = parsed.has_more if parsed.has_more is not None else parsed.count >= limit
        if self._wanted is not None:
            # Only batches handed out count: one skipped malformed leaves room for another.
            self._wanted -= len(parsed.batches)
        if not more:
            self._more = False
            return Step(more=False)
        self._more = False  # until the page proves it can be followed
        if not parsed.count:
            message = f"the page after {after!r} has no batches but claims has_more=true"
            return Step(more=False, error=PaginationError(message, cursor=after), keep=False)
        cursor = parsed.last_item_id or parsed.last_id
        if cursor is None:
            message = (
                f"the page after {after!r} claims more, but its last item has no id to"
                " continue after"
            )
            last = parsed.batches[-1].id if parsed.batches else after
            return Step(more=False, error=PaginationError(message, cursor=last))
        if cursor in self._seen:
            message = (
                f"the page after {after!r} ends at {cursor!r}, a cursor seen before;"
                " following it would loop"
            )
            return Step(more=False, error=PaginationError(message, cursor=after), keep=False)
        self._seen.add(cursor)
        self._after = cursor
        self._more = True
        return Step(more=True)


class Walk:
    """A listing from the newest batch, one page per call, with no task and no prefetch:
    the pages as read, malformed items included, for code that judges each itself."""

    def __init__(self, fetch: Fetch, limit: int) -> None:
        self._fetch = fetch
        self._chain = CursorChain(after=None, limit=limit, max_items=None)
        self._error: PaginationError | None = None

    @property
    def exhausted(self) -> bool:
        """Whether the page last read was the last one, with nothing left to raise."""
        return self._chain.ended and self._error is None

    async def next_page(self) -> FetchedPage[Any] | None:
        """The next page, or None after the last; a chain that cannot be followed raises
        its `PaginationError` after the page that broke it."""
        if self._error is not None:
            raise self._error
        if self._chain.ended:
            return None
        after, limit = self._chain.next_request()
        fetched = await self._fetch(after, limit)
        step = self._chain.advance(fetched.parsed, after, limit)
        self._error = step.error
        if step.error is not None and not step.keep:
            raise step.error
        return fetched
