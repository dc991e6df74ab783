"""Client CPU per batch, end to end: aiobatches vs the official SDK vs the transport floor.

Every contender lists the same pages from the same server process. Each
trial runs one contender in a fresh client process that imports only what it
needs (so garbage collection walks the heap a real user would have), lists
once to warm up, then once timed. Trials are interleaved (A B C D, A B C D,
...) so machine noise hits all alike. The timed listing also counts the
cyclic garbage collector's runs of each generation (`gc.callbacks`) and the
time they took: what a client's objects cost beyond building them.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ._common import server_process, spread, table

PAGE = 100
KEY = "sk-bench"


async def _by_hand(url: str, read: Callable[[Any], tuple[int, bool, str | None]]) -> int:
    """Page through the server with one aiohttp session and orjson, as a client would by
    hand; `read` turns each decoded page into its batch count, whether more follow, and
    the cursor after it."""
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
                batches, more, after = read(orjson.loads(await response.read()))
            count += batches
            if not more:
                return count


def _dicts(page: Any) -> tuple[int, bool, str | None]:
    data = page["data"]
    return len(data), page["has_more"], data[-1]["id"] if data else None


def _models(page: Any) -> tuple[int, bool, str | None]:
    from aiobatches._converter import parse_page

    parsed = parse_page(page)
    return sum(1 for _ in parsed.batches), bool(parsed.has_more), parsed.last_item_id


async def floor(url: str) -> int:
    """The transport floor: the same aiohttp session and orjson, dicts only, no models."""
    return await _by_hand(url, _dicts)


async def floor_parsing(url: str) -> int:
    """The floor, each page then read by `parse_page`: the models without the stream."""
    return await _by_hand(url, _models)


def with_aiobatches(prefetch: int) -> Callable[[str], Coroutine[Any, Any, int]]:
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
CONTENDERS: dict[str, Callable[[str], Coroutine[Any, Any, int]]] = {
    FLOOR: floor,
    "floor + parse_page (models, no stream)": floor_parsing,
    "aiobatches prefetch=0": with_aiobatches(0),
    "aiobatches prefetch=1": with_aiobatches(1),
    OPENAI: with_openai,
}


class Collections:
    """Counts the collector's runs per generation, and the seconds they take, while active."""

    def __init__(self) -> None:
        self.runs = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.runs[info["generation"]] += 1

    def __enter__(self) -> Collections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self)


def child(url: str, name: str, items: int) -> None:
    """In a fresh client process: warm up, list once timed; print wall and CPU seconds,
    the collections of each generation, and the seconds spent in them."""
    contender = CONTENDERS[name]
    assert asyncio.run(contender(url)) == items
    with Collections() as collections:
        wall, cpu = time.perf_counter(), time.process_time()
        count = asyncio.run(contender(url))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert count == items, (name, count)
    print(wall, cpu, *collections.runs, collections.seconds)


def run(pages: int, trials: int) -> str:
    """Measure every contender `trials` times over `pages` pages; return the table."""
    items = pages * PAGE
    results: dict[str, list[list[float]]] = {name: [] for name in CONTENDERS}
    with server_process(items) as url:
        for _ in range(trials):
            for name in CONTENDERS:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks._cpu", url, name, str(items)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                results[name].append([float(value) for value in out])
    # Columns of a child's line: wall, CPU, gen0, gen1 and gen2 runs, seconds collecting.
    column = {name: list(zip(*rows, strict=True)) for name, rows in results.items()}
    floor_cpu = statistics.median(column[FLOOR][1])
    openai_cpu = statistics.median(column[OPENAI][1])
    rows = []
    for name in CONTENDERS:
        walls, cpus, *runs, collecting = column[name]
        cpu = statistics.median(cpus)
        per_thousand = (f"{statistics.median(gen) / items * 1000:.1f}" for gen in runs)
        rows.append(
            [
                name,
                spread(walls),
                spread(cpus),
                spread([value / items * 1e6 for value in cpus], "{:.2f}"),
                f"{cpu / floor_cpu:.2f}x",
                f"{openai_cpu / cpu:.1f}x less" if cpu < openai_cpu else "-",
                " / ".join(per_thousand),
                spread([value / items * 1e6 for value in collecting], "{:.2f}"),
            ]
        )
    title = f"CPU per batch, {pages} pages x {PAGE} batches, {trials} interleaved trials"
    headers = [
        "client",
        "wall s",
        "client CPU s",
        "CPU us/batch",
        "vs floor",
        "vs openai",
        "GC runs gen0 / 1 / 2 per 1,000 batches",
        "in GC us/batch",
    ]
    return f"### {title}\n\n" + table(headers, rows)


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
