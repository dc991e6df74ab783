"""Client CPU per batch, end to end: aiobatches vs the official SDK vs the transport floor.

Every contender lists the same pages from the same server process; trials
are interleaved (A B C D, A B C D, ...) so machine noise hits all alike.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
import openai
import orjson

import aiobatches

from ._common import server_process, spread, table

PAGE = 100
KEY = "sk-bench"

Contender = Callable[[str], Awaitable[int]]


async def floor(url: str) -> int:
    """The transport floor: the same aiohttp session and orjson, dicts only, no models."""
    count = 0
    after: str | None = None
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"limit": str(PAGE)}
            if after is not None:
                params["after"] = after
            async with session.get(
                f"{url}/batches", params=params, headers={"Authorization": f"Bearer {KEY}"}
            ) as response:
                page = orjson.loads(await response.read())
            data = page["data"]
            count += len(data)
            if not page["has_more"]:
                return count
            after = data[-1]["id"]


def with_aiobatches(prefetch: int) -> Contender:
    async def run(url: str) -> int:
        count = 0
        async with aiobatches.Client(api_key=KEY, base_url=url) as client:
            async for _ in client.list_batches(limit=PAGE, prefetch=prefetch):
                count += 1
        return count

    return run


async def with_openai(url: str) -> int:
    count = 0
    async with openai.AsyncOpenAI(api_key=KEY, base_url=url, max_retries=0) as client:
        async for _ in client.batches.list(limit=PAGE):
            count += 1
    return count


CONTENDERS: dict[str, Contender] = {
    "transport floor (aiohttp + orjson, dicts)": floor,
    "aiobatches prefetch=0": with_aiobatches(0),
    "aiobatches prefetch=1": with_aiobatches(1),
    "openai AsyncOpenAI().batches.list": with_openai,
}


def run(pages: int, trials: int) -> str:
    """Measure every contender `trials` times over `pages` pages; return the table."""
    items = pages * PAGE
    walls: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    cpus: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    with server_process(items) as url:
        for name, contender in CONTENDERS.items():  # warm-up: caches, pools, lazy imports
            assert asyncio.run(contender(url)) == items, name
        for _ in range(trials):
            for name, contender in CONTENDERS.items():
                wall, cpu = time.perf_counter(), time.process_time()
                count = asyncio.run(contender(url))
                cpus[name].append(time.process_time() - cpu)
                walls[name].append(time.perf_counter() - wall)
                assert count == items, (name, count)
    floor_cpu = statistics.median(cpus[next(iter(CONTENDERS))])
    openai_cpu = statistics.median(cpus["openai AsyncOpenAI().batches.list"])
    rows = []
    for name in CONTENDERS:
        cpu = statistics.median(cpus[name])
        rows.append(
            [
                name,
                spread(walls[name]),
                spread(cpus[name]),
                spread([value / items * 1e6 for value in cpus[name]], "{:.2f}"),
                f"{cpu / floor_cpu:.2f}x",
                f"{openai_cpu / cpu:.1f}x less" if cpu < openai_cpu else "-",
            ]
        )
    title = f"CPU per batch, {pages} pages x {PAGE} batches, {trials} interleaved trials"
    headers = ["client", "wall s", "client CPU s", "CPU us/batch", "vs floor", "vs openai"]
    return f"### {title}\n\n" + table(headers, rows)
