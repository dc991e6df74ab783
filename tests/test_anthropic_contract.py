"""The official `anthropic` SDK pages through the fake server's Message Batches.

As the schema test is for OpenAI's pages, this is the contract for Anthropic's:
the SDK's own models and paginator read every answer, with its strict response
validation on as well, so that any shape the fake gets wrong fails here.
"""

from __future__ import annotations

import datetime
import os
from typing import Final

import anthropic
import pytest
from _helpers import API_KEY, MakeServer

from aiobatches.testing import FakeBatchesServer, Fault, ManualClock

STRICT: Final = pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])


@pytest.fixture(autouse=True)
def no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, base URL or custom header from the developer's environment reaches the SDK."""
    for name in list(os.environ):
        if name.upper().startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def server(make_server: MakeServer) -> FakeBatchesServer:
    """A fake server of 60 seeded batches requiring API_KEY."""
    return await make_server(count=60, seed=11, api_key=API_KEY)


def sdk(server: FakeBatchesServer, *, strict: bool, key: str = API_KEY) -> anthropic.AsyncAnthropic:
    """The official client aimed at the fake server, retrying nothing; `async with` it."""
    return anthropic.AsyncAnthropic(
        api_key=key,
        base_url=server.anthropic_url,
        max_retries=0,
        _strict_response_validation=strict,
    )


def served_ids(server: FakeBatchesServer) -> list[str]:
    """The Anthropic ids of every batch the server holds, newest first."""
    return ["msgbatch_" + batch["id"].removeprefix("batch_") for batch in server.batches]


@STRICT
async def test_the_sdk_pages_through_every_batch_once_in_order(
    server: FakeBatchesServer, strict: bool
) -> None:
    """`async for` over `messages.batches.list(limit=7)` yields every batch once, newest first."""
    async with sdk(server, strict=strict) as client:
        batches = [batch async for batch in client.messages.batches.list(limit=7)]
    assert [batch.id for batch in batches] == served_ids(server)
    assert len(server.page_requests) == -(-60 // 7)
    created = [batch.created_at for batch in batches]
    assert created == sorted(created, reverse=True)
    for batch in batches:
        assert batch.created_at.utcoffset() is not None
        assert batch.expires_at - batch.created_at == datetime.timedelta(days=1)
        counts = batch.request_counts
        total = counts.processing + counts.succeeded + counts.errored + counts.canceled
        assert total + counts.expired > 0
        assert (batch.ended_at is None) == (batch.processing_status != "ended")


@STRICT
async def test_the_sdk_pages_back_up_with_before_id(
    server: FakeBatchesServer, strict: bool
) -> None:
    """Listing `before_id` the oldest batch walks the pages upward, each newest first."""
    expected = served_ids(server)
    async with sdk(server, strict=strict) as client:
        first = await client.messages.batches.list(before_id=expected[-1], limit=7)
        pages = [[batch.id for batch in page.data] async for page in first.iter_pages()]
    assert [batch_id for page in reversed(pages) for batch_id in page] == expected[:-1]


@STRICT
async def test_the_sdk_retrieves_a_listed_batch(server: FakeBatchesServer, strict: bool) -> None:
    """`messages.batches.retrieve(id)` answers the batch as listed, with its request id."""
    async with sdk(server, strict=strict) as client:
        page = await client.messages.batches.list(limit=5)
        listed = page.data[3]
        batch = await client.messages.batches.retrieve(listed.id)
    assert batch == listed
    assert batch._request_id is not None
    assert batch._request_id.startswith("req_")


@STRICT
async def test_an_unknown_batch_is_the_sdks_not_found_error(
    server: FakeBatchesServer, strict: bool
) -> None:
    """An unknown id raises `NotFoundError` with `not_found_error` and the answer's request id."""
    async with sdk(server, strict=strict) as client:
        with pytest.raises(anthropic.NotFoundError) as raised:
            await client.messages.batches.retrieve("msgbatch_01NoSuchBatch")
    error = raised.value
    assert error.status_code == 404
    assert error.type == "not_found_error"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert isinstance(error.body, dict)
    assert error.body["request_id"] == error.request_id


async def test_a_wrong_key_is_the_sdks_authentication_error(server: FakeBatchesServer) -> None:
    """The key the SDK sends is checked: a wrong one raises `AuthenticationError`."""
    async with sdk(server, strict=True, key="sk-ant-wrong") as client:
        with pytest.raises(anthropic.AuthenticationError) as raised:
            await client.messages.batches.list()
    assert raised.value.type == "authentication_error"


async def test_an_injected_529_is_the_sdks_overloaded_error(server: FakeBatchesServer) -> None:
    """A 529 fault reaches the SDK as `OverloadedError`, typed `overloaded_error`."""
    server.faults = {0: Fault.respond(529)}
    async with sdk(server, strict=True) as client:
        with pytest.raises(anthropic.OverloadedError) as raised:
            await client.messages.batches.list()
    assert raised.value.status_code == 529
    assert raised.value.type == "overloaded_error"


async def test_the_sdk_sees_a_living_batch_end(make_server: MakeServer) -> None:
    """On a clock, a batch the SDK saw in progress is later ended, its counts split."""
    clock = ManualClock()
    server = await make_server(count=30, seed=3, clock=clock, api_key=API_KEY)
    async with sdk(server, strict=True) as client:
        running = [
            batch
            async for batch in client.messages.batches.list(limit=1000)
            if batch.processing_status != "ended"
        ]
        assert running
        clock.advance(2 * 86_400)
        later = [await client.messages.batches.retrieve(batch.id) for batch in running]
    for was, now in zip(running, later, strict=True):
        assert now.processing_status == "ended"
        assert now.created_at == was.created_at
        assert now.ended_at is not None
        assert now.results_url is not None
        assert now.request_counts.processing == 0
