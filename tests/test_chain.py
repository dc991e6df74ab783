"""The cursor chain's rules, decided with no I/O and no task: what to ask for next, and
what each page means for the chain."""

from __future__ import annotations

import pytest
from _scripted import make_batch

from aiobatches import Batch, PaginationError
from aiobatches._chain import CursorChain, Step, Walk
from aiobatches._converter import ParsedPage, parse_page
from aiobatches._response import FetchedPage


def page(ids: list[str], *, has_more: bool | None, last_id: str | None = None) -> ParsedPage[Batch]:
    """A parsed page of batches with these ids, saying `has_more` (None: not at all)."""
    data = [make_batch(0, status="completed", created_at=1) | {"id": i} for i in ids]
    body: dict[str, object] = {"data": data, "last_id": last_id}
    if has_more is not None:
        body["has_more"] = has_more
    return parse_page(body)


def test_the_next_cursor_is_the_last_item_id_and_the_chain_ends_when_the_server_says() -> None:
    """A page that has more moves the cursor to its last item; `has_more: false` ends it."""
    chain = CursorChain(after=None, limit=2, max_items=None)
    assert chain.next_request() == (None, 2)
    assert chain.advance(page(["b", "a"], has_more=True), None, 2) == Step(more=True)
    assert chain.next_request() == ("a", 2)
    assert not chain.ended
    assert chain.advance(page(["z"], has_more=False), "a", 2) == Step(more=False)
    assert chain.ended


def test_a_server_that_omits_has_more_has_more_while_its_pages_are_full() -> None:
    """Without `has_more`, a full page is followed and a short one ends the chain."""
    chain = CursorChain(after=None, limit=2, max_items=None)
    assert chain.advance(page(["b", "a"], has_more=None), None, 2).more
    assert not chain.advance(page(["z"], has_more=None), "a", 2).more
    assert chain.ended


def test_max_items_asks_the_last_page_only_for_what_is_still_wanted() -> None:
    """The page size shrinks to the batches still wanted, and the chain ends at none,
    even when a server sends more than it was asked for."""
    chain = CursorChain(after="x", limit=100, max_items=3)
    assert chain.next_request() == ("x", 3)
    chain.advance(page(["e", "d"], has_more=True), "x", 3)
    assert chain.next_request() == ("d", 1)
    chain.advance(page(["c", "b", "a"], has_more=True), "d", 1)
    assert chain.ended


@pytest.mark.parametrize(
    "fetched",
    [page([], has_more=True), page(["b", "start"], has_more=True)],
    ids=["empty but claiming more", "ending at a cursor seen before"],
)
def test_a_chain_that_cannot_be_followed_ends_with_one_pagination_error(
    fetched: ParsedPage[Batch],
) -> None:
    """A page that cannot be followed is one decision: no more pages, the error to raise,
    none of its batches handed out (they would repeat), and the request's cursor to resume."""
    chain = CursorChain(after="start", limit=2, max_items=None)
    step = chain.advance(fetched, "start", 2)
    assert not step.more
    assert isinstance(step.error, PaginationError)
    assert step.error.cursor == "start"
    assert not step.keep
    assert chain.ended


def test_a_last_item_with_no_id_ends_the_chain_after_the_batches_before_it() -> None:
    """A page claiming more whose last item has no id hands out its batches, then says
    why it ends, resuming after the last batch handed out."""
    good = make_batch(0, status="completed", created_at=1) | {"id": "b"}
    parsed = parse_page({"data": [good, {"object": "batch"}], "has_more": True})
    step = CursorChain(after=None, limit=2, max_items=None).advance(parsed, None, 2)
    assert step.keep
    assert not step.more
    assert isinstance(step.error, PaginationError)
    assert step.error.cursor == "b"


async def test_a_walk_hands_out_the_page_that_broke_the_chain_before_its_error() -> None:
    """A walk reads page after page with no task; a chain broken with batches to keep
    raises on the call after their page, one broken with none on the call itself; and
    a broken walk stays broken."""
    good = make_batch(0, status="completed", created_at=1) | {"id": "b"}
    pages = {
        None: parse_page({"data": [good, {"object": "batch"}], "has_more": True}),
        "again": parse_page({"data": [], "has_more": True}),
    }
    asked: list[tuple[str | None, int]] = []

    async def fetch(after: str | None, limit: int) -> FetchedPage[Batch]:
        asked.append((after, limit))
        return FetchedPage(pages[after], ())

    walk = Walk(fetch, 2)
    first = await walk.next_page()
    assert first is not None
    assert [batch.id for batch in first.parsed.batches] == ["b"]
    with pytest.raises(PaginationError):
        await walk.next_page()
    assert asked == [(None, 2)]
    pages[None] = parse_page({"data": [good, good | {"id": "again"}], "has_more": True})
    walk = Walk(fetch, 2)
    assert await walk.next_page() is not None
    with pytest.raises(PaginationError, match="no batches"):
        await walk.next_page()
    with pytest.raises(PaginationError, match="no batches"):
        await walk.next_page()  # broken for good, with no request more
    assert asked == [(None, 2), (None, 2), ("again", 2)]
