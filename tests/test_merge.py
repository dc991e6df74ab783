"""`aiobatches.merge`: several accounts' streams as one, newest first, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, assert_type

import pytest
from _helpers import API_KEY, MakeServer, eventually, stream_tasks
from _scripted import NOW, make_batch

import aiobatches
from aiobatches._models import created_moment
from aiobatches.testing import FakeBatchesServer, Fault


def batches(*seconds: tuple[int, int]) -> list[dict[str, Any]]:
    """Batches as `(id number, seconds before NOW)`, listed in the order given."""
    return [make_batch(number, status="completed", created_at=NOW - age) for number, age in seconds]


@contextlib.asynccontextmanager
async def clients(*servers: FakeBatchesServer) -> AsyncIterator[list[aiobatches.Client]]:
    """A client of each server that retries nothing (a transient failure is raised too)."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                aiobatches.Client(api_key=API_KEY, base_url=server.url, max_retries=0)
            )
            for server in servers
        ]


async def handed_out(merged: aiobatches.Merged[aiobatches.Batch]) -> list[tuple[str, str]]:
    """Every `(source, id)` the merge hands out, to its end."""
    return [(source, batch.id) async for source, batch in merged]


def sorted_union(sources: Mapping[str, Sequence[aiobatches.Batch]]) -> list[tuple[str, str]]:
    """Every batch newest first, ties by the mapping's order, then each source's own order."""
    keyed = [
        ((-created_moment(batch), place, own), (name, batch.id))
        for place, (name, listed) in enumerate(sources.items())
        for own, batch in enumerate(listed)
    ]
    return [item for _, item in sorted(keyed)]


PROD = batches((1, 0), (2, 2), (3, 2), (4, 5))
EVALS = batches((12, 0), (11, 0), (13, 2), (14, 3), (15, 5))
"""Ties with prod at 0, 2 and 5 seconds before NOW, and two of its own, listed 12 before 11."""


async def test_ties_come_in_the_mappings_order_then_each_sources_own(
    make_server: MakeServer,
) -> None:
    """Newest first; a tie goes to the source named first, then to its own listing order."""
    prod = await make_server(PROD, api_key=API_KEY)
    evals = await make_server(EVALS, api_key=API_KEY)
    async with clients(prod, evals) as (to_prod, to_evals):
        streams = {"prod": to_prod.list_batches(limit=2), "evals": to_evals.list_batches(limit=3)}
        async with aiobatches.merge(streams) as merged:
            assert await handed_out(merged) == [
                ("prod", "batch_000001"),
                ("evals", "batch_000012"),
                ("evals", "batch_000011"),
                ("prod", "batch_000002"),
                ("prod", "batch_000003"),
                ("evals", "batch_000013"),
                ("evals", "batch_000014"),
                ("prod", "batch_000004"),
                ("evals", "batch_000015"),
            ]
        streams = {"evals": to_evals.list_batches(limit=3), "prod": to_prod.list_batches(limit=2)}
        async with aiobatches.merge(streams) as merged:
            assert (await handed_out(merged))[:3] == [
                ("evals", "batch_000012"),
                ("evals", "batch_000011"),
                ("prod", "batch_000001"),
            ]


async def test_every_batch_of_every_account_comes_once_in_order(make_server: MakeServer) -> None:
    """Three accounts of synthetic batches merge into their sorted union, each batch once."""
    servers = [await make_server(count=90, seed=seed, api_key=API_KEY) for seed in (1, 2, 3)]
    async with clients(*servers) as bound:
        listed = {
            name: await client.list_batches().to_list()
            for name, client in zip(("a", "b", "c"), bound, strict=True)
        }
        streams = {
            name: client.list_batches(limit=7, prefetch=2)
            for name, client in zip(("a", "b", "c"), bound, strict=True)
        }
        async with aiobatches.merge(streams) as merged:
            assert_type(merged, aiobatches.Merged[aiobatches.Batch])
            out = await handed_out(merged)
    assert out == sorted_union(listed)
    assert len(set(out)) == len(out) == 270


async def test_no_source_and_one_source(make_server: MakeServer) -> None:
    """A merge of nothing ends at once; a merge of one stream is that stream, named."""
    merged: aiobatches.Merged[aiobatches.Batch]
    async with aiobatches.merge({}) as merged:
        assert await handed_out(merged) == []
        assert merged.cursors == {}
    server = await make_server(EVALS, api_key=API_KEY)
    async with clients(server) as (client,):
        async with aiobatches.merge({"evals": client.list_batches(limit=2)}) as merged:
            out = await handed_out(merged)
        assert out == [("evals", batch["id"]) for batch in EVALS]
        assert merged.cursors == {"evals": "batch_000015"}


async def test_what_is_not_a_mapping_of_streams_is_refused(make_server: MakeServer) -> None:
    """A list, a non-stream value, a name that is not a str, or one stream twice."""
    server = await make_server(PROD, api_key=API_KEY)
    async with clients(server) as (client,):
        stream = client.list_batches()
        with pytest.raises(TypeError, match="mapping"):
            aiobatches.merge([stream])  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="'prod'"):
            aiobatches.merge({"prod": stream.pages()})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="'evals'"):
            aiobatches.merge({"prod": stream, "evals": [PROD]})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="str"):
            aiobatches.merge({1: stream})  # type: ignore[dict-item]
        with pytest.raises(ValueError, match="two names"):
            aiobatches.merge({"prod": stream, "again": stream})
        await stream.aclose()


async def test_an_error_comes_after_the_batches_that_sort_before_it(
    make_server: MakeServer,
) -> None:
    """evals fails on its second page: every batch before its fourth is handed out first,
    then the error, naming evals and its cursor; every source is closed at once."""
    prod = await make_server(PROD, api_key=API_KEY)
    evals = await make_server(EVALS, api_key=API_KEY, faults={1: Fault.respond(400)})
    async with clients(prod, evals) as (to_prod, to_evals):
        streams = {"prod": to_prod.list_batches(limit=2), "evals": to_evals.list_batches(limit=3)}
        out: list[tuple[str, str]] = []
        async with aiobatches.merge(streams) as merged:
            with pytest.raises(aiobatches.BadRequestError) as raised:
                async for source, batch in merged:
                    out.append((source, batch.id))
            assert all(stream.closed for stream in streams.values())
            assert stream_tasks() == []
            with pytest.raises(RuntimeError, match="stopped early because source 'evals'"):
                await anext(merged)
    assert out == [
        ("prod", "batch_000001"),
        ("evals", "batch_000012"),
        ("evals", "batch_000011"),
        ("prod", "batch_000002"),
        ("prod", "batch_000003"),
        ("evals", "batch_000013"),
    ]
    assert raised.value.source == "evals"
    assert raised.value.cursor == "batch_000013"
    # prod's stream had read batch_000004 ahead; the merge had not handed it out.
    assert streams["prod"].cursor == "batch_000004"
    assert merged.cursors == {"prod": "batch_000003", "evals": "batch_000013"}


async def test_cursors_resume_every_source_with_no_gap_or_repeat(make_server: MakeServer) -> None:
    """After a break, merging each source again from `merged.cursors` gives the rest."""
    prod = await make_server(PROD, api_key=API_KEY)
    evals = await make_server(EVALS, api_key=API_KEY)
    async with clients(prod, evals) as (to_prod, to_evals):
        first: list[tuple[str, str]] = []
        streams = {"prod": to_prod.list_batches(limit=2), "evals": to_evals.list_batches()}
        async with aiobatches.merge(streams) as merged:
            async for source, batch in merged:
                first.append((source, batch.id))
                if len(first) == 4:
                    break
        cursors = merged.cursors
        assert cursors == {"prod": "batch_000002", "evals": "batch_000011"}
        streams = {
            "prod": to_prod.list_batches(limit=2, after=cursors["prod"]),
            "evals": to_evals.list_batches(after=cursors["evals"]),
        }
        async with aiobatches.merge(streams) as merged:
            rest = await handed_out(merged)
    everything = {"prod": [*PROD], "evals": [*EVALS]}
    assert first + rest == [
        (name, batch["id"])
        for name, batch in sorted(
            ((name, batch) for name, listed in everything.items() for batch in listed),
            key=lambda item: (-item[1]["created_at"], list(everything).index(item[0])),
        )
    ]


@pytest.mark.parametrize("prefetch", [0, 1, 2])
async def test_the_merge_holds_one_page_per_source_beyond_prefetch(
    make_server: MakeServer, prefetch: int
) -> None:
    """While the newer account's 60 batches are handed out, the older one has served no
    more than its first page and its prefetch."""
    newer = await make_server(batches(*((n, n) for n in range(60))), api_key=API_KEY)
    older = await make_server(batches(*((n, 100 + n) for n in range(60, 120))), api_key=API_KEY)
    async with clients(newer, older) as (to_newer, to_older):
        streams = {
            "newer": to_newer.list_batches(limit=5, prefetch=prefetch),
            "older": to_older.list_batches(limit=5, prefetch=prefetch),
        }
        async with aiobatches.merge(streams) as merged:
            first = await anext(merged)
            assert first[0] == "newer"
            for _ in range(59):
                for _ in range(5):  # let any read ahead run
                    await asyncio.sleep(0)
                assert 1 <= older.page_request_count <= 1 + prefetch
                source, _ = await anext(merged)
                assert source == "newer"
            assert older.page_request_count <= 1 + prefetch
            source, batch = await anext(merged)
            assert (source, batch.id) == ("older", "batch_000060")


async def test_the_first_item_waits_for_one_page_of_each_source(make_server: MakeServer) -> None:
    """With no prefetch, the first batch is handed out after exactly one page of each."""
    servers = [await make_server(count=30, seed=seed, api_key=API_KEY) for seed in (1, 2, 3)]
    async with clients(*servers) as bound:
        streams = {
            str(n): client.list_batches(limit=4, prefetch=0) for n, client in enumerate(bound)
        }
        async with aiobatches.merge(streams) as merged:
            await anext(merged)
            for _ in range(5):
                await asyncio.sleep(0)
            assert [server.page_request_count for server in servers] == [1, 1, 1]


async def test_every_exit_closes_every_source(make_server: MakeServer) -> None:
    """A break, `aclose()` twice, leaving `async with` unread: every source is closed,
    no page request is left running, and the merge then ends quietly."""
    prod = await make_server(PROD, api_key=API_KEY)
    evals = await make_server(EVALS, api_key=API_KEY)
    async with clients(prod, evals) as (to_prod, to_evals):
        broken = {"prod": to_prod.list_batches(limit=1), "evals": to_evals.list_batches()}
        async with aiobatches.merge(broken) as merged:
            async for _ in merged:
                break
        assert all(stream.closed for stream in broken.values())
        assert stream_tasks() == []

        closed = {"prod": to_prod.list_batches(limit=1), "evals": to_evals.list_batches()}
        merged = aiobatches.merge(closed)
        await anext(merged)
        await merged.aclose()
        await merged.aclose()
        assert all(stream.closed for stream in closed.values())
        assert stream_tasks() == []
        with pytest.raises(StopAsyncIteration):
            await anext(merged)

        unread = {"prod": to_prod.list_batches(limit=1), "evals": to_evals.list_batches()}
        async with aiobatches.merge(unread):
            pass
        assert all(stream.closed for stream in unread.values())
        assert "closed" in repr(merged)


@pytest.mark.parametrize("first", [True, False], ids=["first pages", "a later page"])
async def test_cancellation_closes_every_source(make_server: MakeServer, first: bool) -> None:
    """A consumer cancelled while a source's page is on its way closes every source; the
    merge then says it stopped early instead of ending like a complete list."""
    prod = await make_server(PROD, api_key=API_KEY)
    slow = await make_server(EVALS, api_key=API_KEY)
    async with clients(prod, slow) as (to_prod, to_slow):
        streams = {  # no prefetch: a page is requested just when the merge reads it
            "prod": to_prod.list_batches(limit=1, prefetch=0),
            "slow": to_slow.list_batches(limit=1, prefetch=0),
        }
        merged = aiobatches.merge(streams)
        if not first:  # prod's newest, then slow's tie with it; then slow's next page
            assert [(await anext(merged))[0] for _ in range(2)] == ["prod", "slow"]
        slow.latency = 60.0
        requested = slow.page_request_count
        consumer = asyncio.create_task(handed_out(merged))
        assert await eventually(lambda: slow.page_request_count > requested)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert all(stream.closed for stream in streams.values())
        assert stream_tasks() == []
        with pytest.raises(RuntimeError, match="stopped early because its consumer was cancelled"):
            await anext(merged)
        await merged.aclose()


async def test_aclose_from_another_task_ends_the_iteration(make_server: MakeServer) -> None:
    """A consumer waiting for a page ends quietly when another task closes the merge."""
    prod = await make_server(PROD, api_key=API_KEY)
    slow = await make_server(EVALS, api_key=API_KEY, latency=60.0)
    async with clients(prod, slow) as (to_prod, to_slow):
        streams = {"prod": to_prod.list_batches(), "slow": to_slow.list_batches()}
        merged = aiobatches.merge(streams)
        consumer = asyncio.create_task(handed_out(merged))
        assert await eventually(lambda: slow.page_request_count == 1)
        await merged.aclose()
        assert await consumer == []
        assert all(stream.closed for stream in streams.values())
        assert merged.cursors == {"prod": None, "slow": None}


async def test_a_source_that_is_no_usable_stream_is_named(make_server: MakeServer) -> None:
    """An error of a source that is no API error (its client was closed) names the source
    in `error.source` and in a note, and the merge stops early."""
    server = await make_server(PROD, api_key=API_KEY)
    async with clients(server) as (client,):
        stream = client.list_batches()
    async with aiobatches.merge({"prod": stream}) as merged:
        with pytest.raises(RuntimeError, match="client was closed") as raised:
            await anext(merged)
        assert raised.value.__notes__ == ["raised by the merge's source 'prod'"]
        assert getattr(raised.value, "source", None) == "prod"
        with pytest.raises(RuntimeError, match="stopped early because source 'prod' failed"):
            await anext(merged)


async def test_a_second_task_may_not_iterate_the_merge(make_server: MakeServer) -> None:
    """Two tasks reading one merge at once is a mistake, refused in the second."""
    slow = await make_server(EVALS, api_key=API_KEY, latency=60.0)
    async with (
        clients(slow) as (client,),
        aiobatches.merge({"slow": client.list_batches()}) as merged,
    ):
        consumer = asyncio.create_task(handed_out(merged))
        assert await eventually(lambda: slow.page_request_count == 1)
        with pytest.raises(RuntimeError, match="another task"):
            await anext(merged)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer


async def test_openai_and_anthropic_batches_merge_newest_first_to_the_microsecond(
    make_server: MakeServer,
) -> None:
    """OpenAI's whole seconds and Anthropic's microseconds sort on one scale: each batch
    once, newest first, typed as either kind; the cursors are the last handed out."""
    openai_server = await make_server(count=60, api_key=API_KEY, seed=1)
    anthropic_server = await make_server(count=60, api_key=API_KEY, seed=2)
    async with (
        aiobatches.Client(api_key=API_KEY, base_url=openai_server.url) as openai,
        aiobatches.AnthropicClient(
            api_key=API_KEY, base_url=anthropic_server.anthropic_url
        ) as claude,
    ):
        merged = aiobatches.merge(
            {"openai": openai.list_batches(limit=7), "claude": claude.list_batches(limit=9)}
        )
        assert_type(merged, aiobatches.Merged[aiobatches.Batch | aiobatches.MessageBatch])
        async with merged:
            got = [(source, batch) async for source, batch in merged]
    assert sorted(source for source, _ in got) == ["claude"] * 60 + ["openai"] * 60
    assert len({batch.id for _, batch in got}) == 120
    moments = [created_moment(batch) for _, batch in got]
    assert moments == sorted(moments, reverse=True)
    assert {type(batch) for source, batch in got if source == "claude"} == {aiobatches.MessageBatch}
    assert merged.cursors == {"openai": got_last(got, "openai"), "claude": got_last(got, "claude")}


def got_last(got: list[tuple[str, aiobatches.Batch | aiobatches.MessageBatch]], source: str) -> str:
    return next(batch.id for name, batch in reversed(got) if name == source)
