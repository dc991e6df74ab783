"""Client CPU per batch, end to end: aiobatches vs the official SDK vs the transport floor.

Every contender lists the same pages from the same server process. Each
trial runs one contender in a fresh client process that imports only what it
needs (so garbage collection walks the heap a real user would have), lists
once to warm up, then once timed. Trials are interleaved (A B C D, A B C D,
...) so machine noise hits all alike.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from ._common import server_process, spread, table

PAGE = 100
KEY = "sk-bench"


async def floor(url: str) -> int:
    """The transport floor: the same aiohttp session and orjson, dicts only, no models."""
    import aiohttp
    import orjson

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


def with_aiobatches(prefetch: int) -> Callable[[str], Awaitable[int]]:
    async def run(url: str) -> int:
        import aiobatches

        count = 0
        async with aiobatches.Client(api_key=KEY, base_url=url) as client:
            async for _ in client.list_batches(limit=PAGE, prefetch=prefetch):
                count += 1
        return count

    return run


async def with_openai(url: str) -> int:
    import openai

    count = 0
    async with openai.AsyncOpenAI(api_key=KEY, base_url=url, max_retries=0) as client:
        async for _ in client.batches.list(limit=PAGE):
            count += 1
    return count


FLOOR = "transport floor (aiohttp + orjson, dicts)"
OPENAI = "openai AsyncOpenAI().batches.list"
CONTENDERS: dict[str, Callable[[str], Awaitable[int]]] = {
    FLOOR: floor,
    "aiobatches prefetch=0": with_aiobatches(0),
    "aiobatches prefetch=1": with_aiobatches(1),
    OPENAI: with_openai,
}


def child(url: str, name: str, items: int) -> None:
    """In a fresh client process: warm up, list once timed, print wall and CPU seconds."""
    contender = CONTENDERS[name]
    assert asyncio.run(contender(url)) == items
    wall, cpu = time.perf_counter(), time.process_time()
    count = asyncio.run(contender(url))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert count == items, (name, count)
    print(wall, cpu)


def run(pages: int, trials: int) -> str:
    """Measure every contender `trials` times over `pages` pages; return the table."""
    items = pages * PAGE
    walls: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    cpus: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    with server_process(items) as url:
        for _ in range(trials):
            for name in CONTENDERS:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks._cpu", url, name, str(items)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                walls[name].append(float(out[0]))
                cpus[name].append(float(out[1]))
    floor_cpu = statistics.median(cpus[FLOOR])
    openai_cpu = statistics.median(cpus[OPENAI])
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


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
