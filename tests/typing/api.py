"""The public API as a user types it; CI runs `mypy --strict` on this file.

Nothing here runs in the test suite: a regression in the public types fails
type checking instead.
"""

from __future__ import annotations

import asyncio
import datetime

import aiohttp
import multidict

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan, recorded_sleeps, sign_webhook


async def stream_everything(client: aiobatches.Client) -> list[str]:
    ids: list[str] = []
    async with client.list_batches(limit=50, prefetch=2, max_items=500) as stream:
        async for batch in stream:
            ids.append(batch.id)
            status: aiobatches.BatchStatus | str = batch.status
            created: int = batch.created_at
            counts: aiobatches.BatchRequestCounts | None = batch.request_counts
            if counts is not None:
                done: int = counts.completed + counts.failed
                assert done <= counts.total
            if batch.usage is not None:
                cached: int = batch.usage.input_tokens_details.cached_tokens
                reasoning: int = batch.usage.output_tokens_details.reasoning_tokens
                ids.append(f"{cached} {reasoning}")
            if batch.errors is not None:
                for error in batch.errors.data:
                    line: int | None = error.line
                    code: str | None = error.code
                    assert line is None or code is not None
            metadata: dict[str, str] | None = batch.metadata
            ids.append(f"{status} {created} {metadata}")
        cursor: str | None = stream.cursor
    assert cursor is None or cursor in ids
    return ids


async def pages_and_lists(client: aiobatches.Client) -> int:
    total = 0
    async for page in client.list_batches().pages():
        batches: list[aiobatches.Batch] = page.data
        more: bool = page.has_more
        last: str | None = page.last_id
        total += len(batches) + int(more) + len(last or "")
    everything: list[aiobatches.Batch] = await client.list_batches(after="batch_x").to_list()
    return total + len(everything)


async def errors(client: aiobatches.Client) -> str | None:
    try:
        await client.list_batches().to_list()
    except aiobatches.RateLimitError as error:
        wait: float | None = error.retry_after
        return f"{wait}"
    except aiobatches.APIStatusError as error:
        status: int = error.status_code
        request_id: str | None = error.request_id
        return f"{status} {request_id} {error.code} {error.type} {error.param} {error.body!r}"
    except aiobatches.PaginationError as error:
        return error.cursor
    except aiobatches.APIConnectionError as error:
        return error.cursor
    except aiobatches.AIOBatchesError as error:
        return str(error)
    return None


async def clients(session: aiohttp.ClientSession) -> None:
    openai = aiobatches.Client(
        api_key="sk-...",
        base_url="https://api.openai.com/v1",
        organization="org-1",
        project="proj_1",
        session=session,
        timeout=aiohttp.ClientTimeout(total=30),
        max_retries=5,
        connection_limit=10,
        default_headers={"X-Team": "data"},
        default_query={"trace": "1"},
    )
    azure: aiobatches.Client = aiobatches.AzureClient(
        azure_endpoint="https://example.openai.azure.com",
        api_version="2024-10-21",
        azure_ad_token_provider=lambda: "token",
        timeout=10.0,
    )

    async def token() -> str:
        return "token"

    aiobatches.AzureClient(azure_ad_token_provider=token, max_retries=0)
    v1: aiobatches.Client = aiobatches.AzureClient(  # no api_version: Azure's v1 API
        azure_endpoint="https://example.openai.azure.com", api_key="key", api_version=None
    )
    await v1.aclose()
    async with openai, azure:
        await stream_everything(openai)
        await pages_and_lists(azure)
        await errors(openai)
    closed: bool = openai.is_closed
    assert closed
    one_shot: aiobatches.BatchStream[aiobatches.Batch] = aiobatches.list_batches(
        max_items=50, api_key="sk-..."
    )
    await one_shot.aclose()


async def testing_support() -> None:
    plan = FaultPlan(at={0: Fault.respond(429, {"retry-after": "1"}), 1: Fault.drop()})
    async with FakeBatchesServer(count=10, api_key="k", faults=plan, latency=0.01) as server:
        server.faults = {2: Fault.stall(1.0), 3: Fault.truncate()}
        with recorded_sleeps() as delays:
            async with aiobatches.Client(api_key="k", base_url=server.url) as client:
                await client.list_batches().to_list()
        waited: list[float] = delays
        requests: int = len(server.page_requests)
        assert requests >= len(waited)


if __name__ == "__main__":
    asyncio.run(testing_support())


async def awaiting(client: aiobatches.Client, azure: aiobatches.AzureClient) -> list[str]:
    batch: aiobatches.Batch = await client.retrieve_batch("batch_abc123")
    finished: bool = batch.is_finished or batch.status in aiobatches.FINISHED_STATUSES
    done: list[aiobatches.Batch] = await client.wait_for_batches(
        ["batch_a", "batch_b"], poll_interval=30, timeout=3600
    )
    seen = [b.id for b in done] + [str(finished)]
    since = datetime.datetime(2025, 11, 1, tzinfo=datetime.UTC)
    watch: aiobatches.BatchWatch[aiobatches.Batch] = client.watch_batches(
        poll_interval=15, since=since
    )
    async with watch:
        async for event in watch:
            kind: str = event.kind
            previous: aiobatches.Batch | None = event.previous
            changes: tuple[str, ...] = event.changes
            became_finished: bool = event.finished
            seen.append(f"{kind} {event.batch.id} {previous} {changes} {became_finished}")
    async with azure.watch_batches(ids=["batch_a"], until_finished=True, limit=50) as mine:
        seen.extend([event.batch.id async for event in mine])
    one_shot = aiobatches.list_batches(api_key="sk-x", proxy="http://proxy:3128", on_invalid="skip")
    async with one_shot as stream:
        skipped: list[str | None] = stream.skipped
        seen.extend(batch_id or "" for batch_id in skipped)
    return seen


def webhooks(body: bytes, headers: multidict.CIMultiDictProxy[str]) -> str | None:
    rotating: list[str] = ["whsec_b2xk", "whsec_bmV3"]
    try:
        event: aiobatches.WebhookEvent = aiobatches.verify_webhook(
            body, headers, secret=rotating, tolerance=60
        )
    except aiobatches.InvalidWebhookError as error:
        return str(error)
    stamped: int = event.created_at
    kind: str = event.type
    own: dict[str, str] = sign_webhook(body.decode(), "whsec_b2xk")
    aiobatches.verify_webhook(body, own, secret="whsec_b2xk")
    return event.batch_id or f"{event.id} {kind} {stamped}"


async def every_batch_you_own(openai: aiobatches.Client, server: FakeBatchesServer) -> None:
    claude = aiobatches.AnthropicClient(api_key="sk-ant", base_url=server.anthropic_url)
    async with claude:
        async for message_batch in claude.list_batches(limit=1000):
            ended: datetime.datetime | None = message_batch.ended_at
            status: aiobatches.MessageBatchStatus | str = message_batch.processing_status
            counts: aiobatches.MessageBatchRequestCounts = message_batch.request_counts
            print(ended, status, counts.succeeded + counts.errored)
        retrieved: aiobatches.MessageBatch = await claude.retrieve_batch("msgbatch_1")
        waited: list[aiobatches.MessageBatch] = await claude.wait_for_batches([retrieved.id])
        async with claude.watch_batches(ids=[waited[0].id]) as watch:
            async for event in watch:
                created: datetime.datetime = event.batch.created_at
                print(created)
        page: aiobatches.BatchPage[aiobatches.MessageBatch]
        async for page in claude.list_batches().pages():
            print(page.last_id)
        merged = aiobatches.merge(
            {"openai": openai.list_batches(), "claude": claude.list_batches()}
        )
        async with merged:
            async for source, batch in merged:
                either: aiobatches.Batch | aiobatches.MessageBatch = batch
                print(source, either.id, merged.cursors[source])
    aiobatches.AnthropicClient(organization="org")  # type: ignore[call-arg]
