"""Closing as users meet it: concurrent and cancelled closes, double cancellation, abandonment."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from _helpers import API_KEY, eventually, stream_tasks

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan


async def test_concurrent_client_closes_both_wait_for_the_close() -> None:
    """Two concurrent `aclose()` calls both return only once the pending request is gone."""
    async with FakeBatchesServer(count=30, latency=5.0) as server:
        client = aiobatches.Client(api_key=API_KEY, base_url=server.url)
        stream = client.list_batches(limit=10)
        consumer = asyncio.create_task(anext(stream))
        await eventually(lambda: bool(server.requests))  # the page request is in flight
        first = asyncio.create_task(client.aclose())
        await asyncio.sleep(0)
        await client.aclose()  # the second caller
        assert stream_tasks() == []
        await first
        with pytest.raises(RuntimeError, match="client was closed"):
            await consumer


async def test_cancelled_client_close_can_be_repeated() -> None:
    """A cancelled `aclose()` leaves the close running; calling it again waits for all of it."""
    stall = FaultPlan(at={1: Fault.stall(5.0)})
    async with FakeBatchesServer(count=30, faults=stall) as server:
        client = aiobatches.Client(api_key=API_KEY, base_url=server.url)
        quick, slow = client.list_batches(), client.list_batches()
        await asyncio.gather(anext(quick), wait_for_request(server, slow))
        assert server.open_connections == 2  # one idle in the pool, one stalled
        closing = asyncio.create_task(client.aclose())
        await asyncio.sleep(0)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        await client.aclose()
        assert await eventually(lambda: server.open_connections == 0)
        assert stream_tasks() == []


async def test_cancelled_stream_close_can_be_repeated() -> None:
    """A cancelled `stream.aclose()` can be repeated, and then the one-shot client is closed."""
    async with FakeBatchesServer(count=30, latency=5.0) as server:
        stream = aiobatches.list_batches(api_key=API_KEY, base_url=server.url, limit=10)
        consumer = asyncio.create_task(anext(stream))
        await eventually(lambda: bool(server.requests))
        closing = asyncio.create_task(stream.aclose())
        await asyncio.sleep(0)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        await stream.aclose()
        assert stream.closed
        assert stream_tasks() == []
        assert await eventually(lambda: server.open_connections == 0)  # its client closed
        with contextlib.suppress(StopAsyncIteration):
            await consumer
        del stream, consumer, closing
        gc.collect()  # an unclosed session would be reported now, failing `no_leaks`


async def wait_for_request(
    server: FakeBatchesServer, stream: aiobatches.BatchStream[aiobatches.Batch]
) -> None:
    """Start the stream's first request in the background and return once the server has it."""
    consumer = asyncio.create_task(anext(stream))
    await eventually(lambda: len(server.requests) == 2)
    consumer.add_done_callback(lambda task: task.cancelled() or task.exception())


async def consume_bare(stream: aiobatches.BatchStream[aiobatches.Batch]) -> None:
    """A consumer whose only await is the stream's: a cancellation always lands inside it."""
    async for _ in stream:
        pass


async def consume_within(stream: aiobatches.BatchStream[aiobatches.Batch]) -> None:
    """A consumer that works between batches, inside `async with`."""
    async with stream:
        async for _ in stream:
            await asyncio.sleep(0)


@pytest.mark.parametrize("consume", [consume_bare, consume_within])
async def test_double_cancellation_closes_the_one_shot_client(
    consume: Callable[[aiobatches.BatchStream[aiobatches.Batch]], Coroutine[Any, Any, None]],
) -> None:
    """A consumer cancelled twice in a row still closes its one-shot stream and client, always."""
    rng = random.Random(7)
    async with FakeBatchesServer(count=60, latency=0.01) as server:
        for _ in range(100):
            stream = aiobatches.list_batches(api_key=API_KEY, base_url=server.url, limit=10)
            consumer = asyncio.create_task(consume(stream))
            await asyncio.sleep(rng.uniform(0, 0.03))
            consumer.cancel()
            await asyncio.sleep(0)
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            assert await eventually(lambda: not stream_tasks())
            assert stream.closed
            assert await eventually(lambda: server.open_connections == 0)  # its client closed
        del stream, consumer
        gc.collect()  # an unclosed session would be reported now, failing `no_leaks`


async def test_dropped_one_shot_stream_closes_its_client_while_the_loop_runs() -> None:
    """A long-running service that drops an unclosed one-shot stream gets its connections back."""
    async with FakeBatchesServer(count=300) as server:
        stream = aiobatches.list_batches(api_key=API_KEY, base_url=server.url, limit=10)
        async for _ in stream:
            break
        assert await eventually(lambda: not stream_tasks())  # the prefetched page has arrived
        assert server.open_connections == 1
        del stream
        gc.collect()
        assert await eventually(lambda: server.open_connections == 0)


ABANDON = """
import asyncio, gc, sys
import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan

async def main(prefetch, keep):
    # Dev mode reports what is left open; a slow step on a loaded machine is no leak.
    asyncio.get_running_loop().slow_callback_duration = 60
    async with FakeBatchesServer(count=300) as server:
        stream = aiobatches.list_batches(
            api_key="sk-x", base_url=server.url, limit=10, prefetch=prefetch
        )
        async for batch in stream:
            break
        if not keep:
            del stream
            gc.collect()
        await asyncio.sleep(0.05)

asyncio.run(main(int(sys.argv[1]), sys.argv[2] == "keep"))
print("ok")
"""


@pytest.mark.parametrize("prefetch", [0, 1, 3])
@pytest.mark.parametrize("keep", ["keep", "drop"])
def test_abandoned_one_shot_stream_closes_by_loop_end(prefetch: int, keep: str) -> None:
    """Breaking out of `aiobatches.list_batches()` without `async with` warns of nothing at exit."""
    script = textwrap.dedent(ABANDON)
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", script, str(prefetch), keep],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout == "ok\n"
    assert done.stderr == ""
    assert done.returncode == 0


async def test_a_closed_stream_and_its_pages_are_freed_without_the_cycle_collector() -> None:
    """A closed stream leaves no reference cycle behind: dropping it frees it, and the page
    it held, at once, so a service listing all day never waits on a full collection."""
    async with (
        FakeBatchesServer(count=150, api_key=API_KEY) as server,
        aiobatches.Client(api_key=API_KEY, base_url=server.url) as client,
    ):
        gc.collect()
        gc.disable()
        try:
            async with client.list_batches(limit=100) as stream:
                async for _ in stream:
                    break
            collected = weakref.ref(stream)
            del stream
            assert collected() is None
        finally:
            gc.enable()
