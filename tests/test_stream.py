"""Streaming over real HTTP against FakeBatchesServer: order, prefetch, resume, cleanup."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
from typing import Any

import aiohttp
import orjson
import pytest
from _helpers import API_KEY, MOCK_BASE, MOCK_LIST, eventually, ids, served_ids, stream_tasks
from _scripted import ScriptedServer, make_batch
from aioresponses import aioresponses

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan, synthetic_batches


async def settle() -> None:
    """Wait until no stream task is running (the prefetch window is full or the chain ended)."""
    assert await eventually(lambda: not stream_tasks()), "a stream task kept running"


@pytest.mark.parametrize("limit", [1, 7, 20, 100])
@pytest.mark.parametrize("prefetch", [0, 1, 3])
async def test_whole_stream_in_order(
    server: FakeBatchesServer, client: aiobatches.Client, limit: int, prefetch: int
) -> None:
    """Every batch arrives once, newest first, in ceil(n / limit) requests of `limit`."""
    got = [batch async for batch in client.list_batches(limit=limit, prefetch=prefetch)]
    assert ids(got) == served_ids(server)
    requests = server.page_requests
    assert len(requests) == math.ceil(len(server.batches) / limit)
    assert {request.query["limit"] for request in requests} == {str(limit)}


@pytest.mark.parametrize("prefetch", [0, 1, 2, 3])
async def test_prefetch_window(
    server: FakeBatchesServer, client: aiobatches.Client, prefetch: int
) -> None:
    """While the caller holds page 1, exactly `prefetch` more pages are requested, no more."""
    async with client.list_batches(limit=10, prefetch=prefetch) as stream:
        first = await anext(stream)
        await settle()
        assert len(server.page_requests) == 1 + prefetch
        for _ in range(9):
            await anext(stream)
        await settle()
        assert len(server.page_requests) == 1 + prefetch
        assert (await anext(stream)).id == served_ids(server)[10]
        await settle()
        assert len(server.page_requests) == 2 + prefetch
    assert first.id == served_ids(server)[0]


async def test_sequential_never_requests_more_pages_than_consumed(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """prefetch=0 requests a page only when the caller asks for its first batch."""
    seen = []
    async with client.list_batches(limit=25, prefetch=0) as stream:
        async for batch in stream:
            seen.append(batch)
            pages_started = (len(seen) + 24) // 25
            assert len(server.page_requests) == pages_started
    assert ids(seen) == served_ids(server)


@pytest.mark.parametrize("prefetch", [0, 1, 3])
@pytest.mark.parametrize("stop_at", [1, 37, 100, 249])
async def test_resume_from_cursor_has_no_gap_and_no_repeat(
    server: FakeBatchesServer, client: aiobatches.Client, prefetch: int, stop_at: int
) -> None:
    """A stream rebuilt with after=cursor continues exactly where the first one stopped."""
    first: list[aiobatches.Batch] = []
    async with client.list_batches(limit=20, prefetch=prefetch) as stream:
        async for batch in stream:
            first.append(batch)
            if len(first) == stop_at:
                break
    assert stream.cursor == first[-1].id
    rest = await client.list_batches(after=stream.cursor, limit=30, prefetch=prefetch).to_list()
    assert ids(first) + ids(rest) == served_ids(server)


async def test_cursor_starts_at_after(client: aiobatches.Client) -> None:
    """Before anything is handed out, cursor is the `after` the stream was built with."""
    async with client.list_batches(after="batch_x") as stream:
        assert stream.cursor == "batch_x"
    async with client.list_batches() as stream:
        assert stream.cursor is None


@pytest.mark.parametrize("prefetch", [0, 1, 3])
@pytest.mark.parametrize(
    ("max_items", "limits"),
    [(25, ["10", "10", "5"]), (20, ["10", "10"]), (3, ["3"]), (0, [])],
)
async def test_max_items_requests_only_what_it_needs(
    server: FakeBatchesServer,
    client: aiobatches.Client,
    prefetch: int,
    max_items: int,
    limits: list[str],
) -> None:
    """max_items stops there, never asks for a page it does not need, and trims the last one."""
    stream = client.list_batches(limit=10, prefetch=prefetch, max_items=max_items)
    got = await stream.to_list()
    assert ids(got) == served_ids(server)[:max_items]
    assert [request.query["limit"] for request in server.page_requests] == limits


async def test_max_items_beyond_the_end(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """Asking for more than exists yields everything and stops at has_more=false."""
    got = await client.list_batches(max_items=10_000).to_list()
    assert ids(got) == served_ids(server)
    assert len(server.page_requests) == 3


async def test_pages(server: FakeBatchesServer, client: aiobatches.Client) -> None:
    """pages() yields BatchPage objects with their cursors and has_more."""
    pages = [page async for page in client.list_batches(limit=100).pages()]
    assert [len(page.data) for page in pages] == [100, 100, 50]
    assert [page.has_more for page in pages] == [True, True, False]
    assert all(page.first_id == page.data[0].id for page in pages)
    assert all(page.last_id == page.data[-1].id for page in pages)
    assert [batch.id for page in pages for batch in page.data] == served_ids(server)


async def test_pages_with_max_items_are_trimmed(client: aiobatches.Client) -> None:
    """The last page holds only the batches still wanted."""
    async with client.list_batches(limit=10, max_items=15).pages() as pages:
        sizes = [len(page.data) async for page in pages]
    assert sizes == [10, 5]


async def test_pages_after_some_items_give_the_rest_of_the_page(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """Switching to pages() mid-page first yields what is left of the current page."""
    async with client.list_batches(limit=10) as stream:
        head = [await anext(stream) for _ in range(4)]
        pages = [page async for page in stream.pages()]
    assert len(pages[0].data) == 6
    assert ids(head) + [batch.id for page in pages for batch in page.data] == served_ids(server)


async def test_stream_is_its_own_iterator(client: aiobatches.Client) -> None:
    """A stream is iterated once: __aiter__ returns the stream itself."""
    async with client.list_batches() as stream:
        assert aiter(stream) is stream
        assert len(await stream.to_list()) == 250
        assert await stream.to_list() == []


async def test_borrowed_session_stays_open_and_usable(server: FakeBatchesServer) -> None:
    """A web backend's own session is used, left open on aclose, and still works after."""
    async with aiohttp.ClientSession() as session:
        async with aiobatches.Client(api_key=API_KEY, base_url=server.url, session=session) as c:
            assert len(await c.list_batches().to_list()) == 250
        assert not session.closed
        async with session.get(f"{server.url}/batches?limit=1") as response:
            assert response.status == 401


async def test_break_inside_async_with_leaves_nothing_running(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """Breaking out of async for inside async with cancels the prefetch."""
    server.latency = 0.05
    async with client.list_batches(limit=5, prefetch=3) as stream:
        async for _ in stream:
            break
    assert stream_tasks() == []
    requests = len(server.page_requests)
    await asyncio.sleep(0.2)
    assert len(server.page_requests) == requests


async def test_cancelling_the_consumer_cancels_the_prefetch(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """Cancelling the task that iterates, while it waits for a page, leaves no task running."""
    server.latency = 5.0
    stream = client.list_batches(prefetch=2)
    consumer = asyncio.create_task(stream.to_list())
    async with asyncio.timeout(10):
        while not server.page_requests:
            await asyncio.sleep(0.01)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert stream_tasks() == []
    with pytest.raises(RuntimeError, match="consumer was cancelled; list again from the start"):
        await stream.to_list()


async def test_aclose_while_prefetching(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """aclose() with a prefetch in flight cancels and awaits it; iteration then ends."""
    stream = client.list_batches(limit=10, prefetch=1)
    await anext(stream)
    server.latency = 5.0
    await asyncio.sleep(0.05)
    assert stream_tasks() != []
    await stream.aclose()
    await stream.aclose()
    assert stream_tasks() == []
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_closing_the_client_closes_its_streams(server: FakeBatchesServer) -> None:
    """A client's aclose() stops the prefetch of every stream it opened."""
    client = aiobatches.Client(api_key=API_KEY, base_url=server.url)
    stream = client.list_batches(limit=10, prefetch=3)
    await anext(stream)
    server.latency = 5.0
    await client.aclose()
    assert stream_tasks() == []


async def test_error_after_good_pages_delivers_them_first() -> None:
    """Batches before a failing page are all handed out; the error carries the resume cursor."""
    batches = [*synthetic_batches(200), {"id": "batch_broken", "object": "batch"}]
    got: list[aiobatches.Batch] = []
    async with (
        FakeBatchesServer(batches) as server,
        aiobatches.Client(api_key=API_KEY, base_url=server.url) as client,
    ):
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            async for batch in client.list_batches(limit=100, prefetch=3):
                got.append(batch)
    assert ids(got) == [batch["id"] for batch in batches[:200]]
    assert caught.value.cursor == got[-1].id
    assert "batch_broken" in str(caught.value)
    assert stream_tasks() == []


async def test_unknown_after_is_a_bad_request(client: aiobatches.Client) -> None:
    """The server's 400 for an unknown cursor surfaces as BadRequestError naming `after`."""
    with pytest.raises(aiobatches.BadRequestError) as caught:
        await client.list_batches(after="batch_nope").to_list()
    assert caught.value.param == "after"
    assert caught.value.cursor == "batch_nope"


async def test_wrong_key_is_an_authentication_error(server: FakeBatchesServer) -> None:
    """A wrong key gets the server's 401 as AuthenticationError, and the key stays hidden."""
    wrong = "sk-wrong-key-that-is-long"
    async with aiobatches.Client(api_key=wrong, base_url=server.url) as client:
        with pytest.raises(aiobatches.AuthenticationError) as caught:
            await client.list_batches().to_list()
    assert caught.value.code == "invalid_api_key"
    assert wrong not in str(caught.value)


async def test_module_level_stream_owns_its_client(
    server: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiobatches.list_batches builds a client from the environment and closes it at the end."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    stream = aiobatches.list_batches(max_items=50, limit=20)
    got = [batch async for batch in stream]
    assert ids(got) == served_ids(server)[:50]
    assert stream.closed
    assert await closed_its_client(server)
    gc.collect()


async def test_module_level_stream_closes_its_client_on_error(server: FakeBatchesServer) -> None:
    """An error ends the one-shot stream and closes the client it made."""
    stream = aiobatches.list_batches(api_key="sk-wrong-wrong", base_url=server.url)
    with pytest.raises(aiobatches.AuthenticationError):
        await stream.to_list()
    assert stream.closed
    assert await closed_its_client(server)


async def test_module_level_stream_closes_its_client_on_aclose(server: FakeBatchesServer) -> None:
    """Leaving async with early closes the one-shot stream's client."""
    async with aiobatches.list_batches(api_key=API_KEY, base_url=server.url, limit=5) as stream:
        await anext(stream)
    assert stream.closed
    assert await closed_its_client(server)


async def closed_its_client(server: FakeBatchesServer) -> bool:
    """Whether the one-shot stream's client let go of every connection: a client left open
    keeps its last connection in its pool, and the server sees it open."""
    return await eventually(lambda: server.open_connections == 0)


def _page(items: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    """A list response without first_id and last_id: the cursor comes from the last item."""
    return {"object": "list", "data": items, "has_more": has_more}


@pytest.mark.parametrize("prefetch", [0, 1, 3])
async def test_repeated_cursor_is_a_pagination_error(mocked: aioresponses, prefetch: int) -> None:
    """A server that loops back to a cursor seen before fails loudly instead of looping."""
    a, b = synthetic_batches(2)
    mocked.get(MOCK_LIST, payload=_page([a], has_more=True))
    mocked.get(MOCK_LIST, payload=_page([b], has_more=True))
    mocked.get(MOCK_LIST, payload=_page([a], has_more=True), repeat=True)
    got: list[aiobatches.Batch] = []
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as c:
        with pytest.raises(aiobatches.PaginationError, match="seen before") as caught:
            async for batch in c.list_batches(limit=1, prefetch=prefetch):
                got.append(batch)
    assert ids(got) == [a["id"], b["id"]]
    assert caught.value.cursor == b["id"]
    assert sum(len(calls) for calls in mocked.requests.values()) == 3


async def test_resuming_at_a_cursor_that_comes_back_is_refused(mocked: aioresponses) -> None:
    """A page that ends on the very `after` it was asked with is a loop too."""
    [a] = synthetic_batches(1)
    mocked.get(MOCK_LIST, payload=_page([a], has_more=True), repeat=True)
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as c:
        with pytest.raises(aiobatches.PaginationError):
            await c.list_batches(after=a["id"]).to_list()


@pytest.mark.parametrize("prefetch", [0, 2])
async def test_has_more_with_no_items_is_a_pagination_error(
    mocked: aioresponses, prefetch: int
) -> None:
    """An empty page that claims more is refused: never an endless loop, never a short list."""
    mocked.get(MOCK_LIST, payload=_page([], has_more=True), repeat=True)
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as c:
        with pytest.raises(aiobatches.PaginationError, match="has_more") as caught:
            await c.list_batches(after="batch_z", prefetch=prefetch).to_list()
    assert caught.value.cursor == "batch_z"
    assert sum(len(calls) for calls in mocked.requests.values()) == 1


async def test_empty_final_page_ends_the_stream(mocked: aioresponses) -> None:
    """An empty page with has_more=false is a normal end."""
    mocked.get(MOCK_LIST, payload=_page([], has_more=False))
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as c:
        assert await c.list_batches().to_list() == []


async def test_two_consumers_on_one_stream_are_refused(client: aiobatches.Client) -> None:
    """A second task iterating the same stream gets RuntimeError instead of stealing pages."""
    stream = client.list_batches(limit=10, prefetch=0)
    results = await asyncio.gather(stream.to_list(), stream.to_list(), return_exceptions=True)
    errors = [result for result in results if isinstance(result, RuntimeError)]
    assert len(errors) == 1
    assert "already being iterated" in str(errors[0])
    await stream.aclose()


async def test_client_closed_mid_stream_is_not_a_complete_list(
    server: FakeBatchesServer,
) -> None:
    """Closing the client under a running stream makes its next anext() say so, with the cursor."""
    client = aiobatches.Client(api_key=API_KEY, base_url=server.url)
    got = []
    with pytest.raises(RuntimeError, match="client was closed") as caught:
        async for batch in client.list_batches(limit=10, prefetch=1):
            got.append(batch)
            if len(got) == 30:
                await client.aclose()
    assert f"after={got[-1].id!r}" in str(caught.value)


async def test_stream_made_before_its_client_closed_refuses(client: aiobatches.Client) -> None:
    """A stream that never started, whose client then closed, raises instead of yielding nothing."""
    stream = client.list_batches()
    await client.aclose()
    with pytest.raises(RuntimeError, match="client was closed; list again from the start"):
        await anext(stream)


async def test_timeout_around_one_anext_does_not_end_the_list_quietly(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """A timeout that cancels a page wait stops the stream; the next anext() says so."""
    stream = client.list_batches(limit=10)
    first = await anext(stream)
    server.latency = 5.0
    for _ in range(9):
        await anext(stream)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await anext(stream)
    with pytest.raises(RuntimeError, match="cancelled") as caught:
        await anext(stream)
    assert stream.cursor == served_ids(server)[9]
    assert first.id in served_ids(server)
    assert "after=" in str(caught.value)


# --- servers that do not keep to the page they were asked for ----------------------------------


def always_serving(
    server: FakeBatchesServer, items: list[dict[str, Any]], *, has_more: bool
) -> None:
    """Make every page request of `server` answer these items, whatever its limit or cursor."""
    body = orjson.dumps({"object": "list", "data": items, "has_more": has_more})
    server.faults = FaultPlan(rate=1.0, pool=[Fault.respond(200, body=body)])


def with_invalid_third(count: int = 5) -> list[dict[str, Any]]:
    """`count` synthetic batches, the third with a request count that is not a number."""
    items = [dict(item) for item in synthetic_batches(count)]
    items[2] = {**items[2], "request_counts": {"total": "many", "completed": 0, "failed": 0}}
    return items


async def test_server_sending_more_than_asked_never_exceeds_max_items(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """A server sending more than `limit` still gives max_items exactly, with no further request."""
    items = synthetic_batches(5)
    always_serving(server, items, has_more=True)
    got = await client.list_batches(limit=2, max_items=3).to_list()
    assert ids(got) == [item["id"] for item in items[:3]]
    assert [request.query["limit"] for request in server.page_requests] == ["2"]


@pytest.mark.parametrize(
    ("max_items", "kept", "skipped"), [(2, [0, 1], []), (4, [0, 1, 3, 4], [2])]
)
async def test_skipped_batch_is_reported_only_when_the_listing_reached_it(
    server: FakeBatchesServer,
    client: aiobatches.Client,
    max_items: int,
    kept: list[int],
    skipped: list[int],
) -> None:
    """A skipped batch is recorded only if max_items let the listing reach it."""
    items = with_invalid_third()
    always_serving(server, items, has_more=False)
    stream = client.list_batches(max_items=max_items, on_invalid="skip")
    got = await stream.to_list()
    assert ids(got) == [items[index]["id"] for index in kept]
    assert stream.skipped == [items[index]["id"] for index in skipped]


async def test_malformed_batch_beyond_max_items_raises_nothing(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """With on_invalid="raise", a malformed batch the listing never reaches raises nothing."""
    items = with_invalid_third()
    always_serving(server, items, has_more=False)
    got = await client.list_batches(max_items=2).to_list()
    assert ids(got) == [item["id"] for item in items[:2]]


async def test_page_claiming_more_that_ends_without_an_id_is_a_pagination_error(
    server: FakeBatchesServer, client: aiobatches.Client
) -> None:
    """A page claiming more with an id-less last item: its batches, then PaginationError."""
    [first] = synthetic_batches(1)
    always_serving(server, [first, {"object": "batch"}], has_more=True)
    stream = client.list_batches(on_invalid="skip")
    with pytest.raises(aiobatches.PaginationError, match="no id to continue") as caught:
        await stream.to_list()
    assert len(server.page_requests) == 1
    assert ids(caught.value.partial or []) == [first["id"]]
    assert caught.value.cursor == first["id"]
    assert stream.skipped == [None]


async def test_repr_shows_the_cursor_and_whether_the_stream_is_closed(
    client: aiobatches.Client,
) -> None:
    """repr(stream) shows where it stands and whether it is open."""
    stream = client.list_batches(after="batch_x")
    assert repr(stream) == "<BatchStream cursor='batch_x' open>"
    await stream.aclose()
    assert repr(stream) == "<BatchStream cursor='batch_x' closed>"


async def test_closing_the_pages_closes_the_stream(client: aiobatches.Client) -> None:
    """`await stream.pages().aclose()` closes the stream under it."""
    stream = client.list_batches(limit=10)
    pages = stream.pages()
    assert len((await anext(pages)).data) == 10
    await pages.aclose()
    assert stream.closed
    assert stream_tasks() == []


async def test_max_items_with_skipped_batches_is_never_a_short_list() -> None:
    """`max_items` counts the batches handed out: a skipped malformed one makes the stream
    ask for one more, instead of ending short while more exist."""
    items = [make_batch(i, status="completed", created_at=1_000_000 - i) for i in range(4)]
    items[1]["request_counts"] = {"total": "many"}
    quiet = logging.getLogger("aiobatches")
    quiet.disabled = True
    try:
        async with ScriptedServer(items) as server, server.client() as client:
            got = await client.list_batches(max_items=3, on_invalid="skip").to_list()
    finally:
        quiet.disabled = False
    assert [batch.id for batch in got] == ["batch_000000", "batch_000002", "batch_000003"]
    assert [query["limit"] for query in server.lists] == ["3", "1"]
