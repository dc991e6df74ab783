"""The benchmark server's Anthropic pages read as real ones: our client and the official
SDK (its strict validation on) list them whole, and the accounts split the batches.

The benchmarks measure clients on these pages, so a shape the official SDK rejects or
reads differently would make its row meaningless.
"""

from __future__ import annotations

import collections
import datetime
import os
import re
from collections.abc import Iterator

import anthropic
import orjson
import pytest

import aiobatches
from aiobatches.testing import synthetic_batches
from benchmarks._common import server_process
from benchmarks._server import ACCOUNTS, KEY, accounts, anthropic_batches

COUNT = 450


@pytest.fixture(autouse=True)
def no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, base URL or custom header from the developer's environment reaches the SDK."""
    for name in list(os.environ):
        if name.upper().startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The benchmark server, in its own process, serving COUNT batches; Anthropic's base."""
    with server_process(COUNT) as url:
        yield url.removesuffix("/v1")


def test_message_batches_are_shaped_and_shared_as_anthropic_sends_them() -> None:
    """Every key sent (nulls included), ids as Anthropic's, statuses in realistic shares,
    requests all `processing` until the batch ends, `results_url` once it has."""
    batches = anthropic_batches(synthetic_batches(COUNT, seed=42))
    fields = set(anthropic.types.messages.MessageBatch.model_fields)
    for batch in batches:
        assert set(batch) == fields
        assert re.fullmatch(r"msgbatch_01[0-9A-Za-z]{22}", batch["id"])
        for name in ("created_at", "expires_at", "ended_at", "cancel_initiated_at"):
            stamp = batch[name]
            assert stamp is None or re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
        ended = batch["processing_status"] == "ended"
        counts = batch["request_counts"]
        assert (counts["processing"] == 0) == ended
        if not ended:
            assert set(counts.values()) - {counts["processing"]} == {0}
        assert (batch["results_url"] is not None) == ended
        assert (batch["ended_at"] is not None) == ended
    shares = collections.Counter(batch["processing_status"] for batch in batches)
    assert shares["ended"] > COUNT / 2 > shares["in_progress"] > shares["canceling"] > 0


def test_pages_have_anthropics_envelope() -> None:
    """A page is `data`, `has_more`, `first_id`, `last_id`: no OpenAI `object`."""
    pages = accounts(anthropic_batches(synthetic_batches(COUNT, seed=42)), anthropic=True)
    page = orjson.loads(pages[KEY].page(None, 100))
    assert list(page) == ["data", "has_more", "first_id", "last_id"]
    assert page["has_more"] is True
    assert page["first_id"] == page["data"][0]["id"]
    assert page["last_id"] == page["data"][-1]["id"]


async def test_both_clients_list_every_batch_alike(base_url: str) -> None:
    """AnthropicClient and the official SDK, validating strictly, list the same batches."""
    async with aiobatches.AnthropicClient(api_key=KEY, base_url=base_url) as client:
        ours = [batch async for batch in client.list_batches(limit=100)]
    async with anthropic.AsyncAnthropic(
        api_key=KEY, base_url=base_url, max_retries=0, _strict_response_validation=True
    ) as official:
        theirs = [batch async for batch in official.messages.batches.list(limit=100)]
    assert len(ours) == COUNT
    assert [batch.id for batch in ours] == [batch.id for batch in theirs]
    for mine, its in zip(ours, theirs, strict=True):
        assert mine.processing_status == its.processing_status
        assert mine.created_at == its.created_at
        assert mine.ended_at == its.ended_at
        assert mine.results_url == its.results_url
    created = [batch.created_at for batch in ours]
    assert created == sorted(created, reverse=True)
    assert all(batch.created_at.tzinfo is datetime.UTC for batch in ours)


async def test_the_accounts_split_the_batches(base_url: str) -> None:
    """The keys of the accounts each list a third of the batches, together all of them once."""
    seen: list[str] = []
    for account in range(ACCOUNTS):
        key = f"{KEY}-{account}"
        async with aiobatches.AnthropicClient(api_key=key, base_url=base_url) as client:
            seen += [batch.id async for batch in client.list_batches(limit=100)]
    assert len(seen) == len(set(seen)) == COUNT
