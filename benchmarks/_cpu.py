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
import contextlib
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ._common import server_process, spread, table
from ._server import ACCOUNTS

PAGE = 100
KEY = "sk-bench"


async def _by_hand(
    url: str, read: Callable[[Any], tuple[int, bool, str | None]], *, anthropic: bool = False
) -> int:
    """Page through the server with one aiohttp session and orjson, as a client would by
    hand; `read` turns each decoded page into its batch count, whether more follow, and
    the cursor after it. `anthropic` lists Message Batches as Anthropic's API has them."""
    import aiohttp
    import orjson

    if anthropic:
        list_url = f"{url.removesuffix('/v1')}/v1/messages/batches"
        cursor, headers = "after_id", {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    else:
        list_url, cursor, headers = f"{url}/batches", "after", {"Authorization": f"Bearer {KEY}"}
    count = 0
    after: str | None = None
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"limit": str(PAGE)}
            if after is not None:
                params[cursor] = after
            async with session.get(list_url, params=params, headers=headers) as response:
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


async def anthropic_floor(url: str) -> int:
    """The transport floor of Anthropic's pages: dicts only, no models."""
    return await _by_hand(url, _dicts, anthropic=True)


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


async def with_anthropic_client(url: str) -> int:
    import aiobatches

    count = 0
    base_url = url.removesuffix("/v1")  # Anthropic's base URL has no /v1
    async with aiobatches.AnthropicClient(api_key=KEY, base_url=base_url) as client:
        async for _ in client.list_batches(limit=PAGE):
            count += 1
    return count


async def with_anthropic(url: str) -> int:
    import anthropic

    count = 0
    base_url = url.removesuffix("/v1")
    async with anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0) as client:
        async for _ in client.messages.batches.list(limit=PAGE):
            count += 1
    return count


def one_after_another(prefetch: int) -> Callable[[str], Coroutine[Any, Any, int]]:
    """Three accounts' batches, each account listed to its end before the next."""

    async def run(url: str) -> int:
        import aiobatches

        count = 0
        async with contextlib.AsyncExitStack() as stack:
            for account in range(ACCOUNTS):
                client = aiobatches.Client(api_key=f"{KEY}-{account}", base_url=url)
                await stack.enter_async_context(client)
                async for _ in client.list_batches(limit=PAGE, prefetch=prefetch):
                    count += 1
        return count

    return run


def merged(prefetch: int) -> Callable[[str], Coroutine[Any, Any, int]]:
    """The same three accounts as one list, newest first, by `aiobatches.merge`."""

    async def run(url: str) -> int:
        import aiobatches

        count = 0
        async with contextlib.AsyncExitStack() as stack:
            streams = {}
            for account in range(ACCOUNTS):
                client = aiobatches.Client(api_key=f"{KEY}-{account}", base_url=url)
                await stack.enter_async_context(client)
                streams[f"account {account}"] = client.list_batches(limit=PAGE, prefetch=prefetch)
            async with aiobatches.merge(streams) as batches:
                async for _ in batches:
                    count += 1
        return count

    return run


FLOOR = "transport floor (aiohttp + orjson, dicts)"
OPENAI = "openai AsyncOpenAI().batches.list"
ANTHROPIC_FLOOR = "Anthropic pages: transport floor (aiohttp + orjson, dicts)"
ANTHROPIC = "Anthropic pages: anthropic AsyncAnthropic().messages.batches.list"
CONTENDERS: dict[str, Callable[[str], Coroutine[Any, Any, int]]] = {
    FLOOR: floor,
    "floor + parse_page (models, no stream)": floor_parsing,
    "aiobatches prefetch=0": with_aiobatches(0),
    "aiobatches prefetch=1": with_aiobatches(1),
    OPENAI: with_openai,
    ANTHROPIC_FLOOR: anthropic_floor,
    "Anthropic pages: aiobatches AnthropicClient prefetch=1": with_anthropic_client,
    ANTHROPIC: with_anthropic,
}
"""The CPU table's rows; the Anthropic ones list the same batches as Message Batches."""
SEQUENTIAL = "3 accounts one after another (3 Clients, prefetch=1)"
MERGED = "3 accounts merged by aiobatches.merge (prefetch=1)"
MERGES: dict[str, Callable[[str], Coroutine[Any, Any, int]]] = {
    SEQUENTIAL: one_after_another(1),
    MERGED: merged(1),
    "3 accounts one after another (prefetch=0)": one_after_another(0),
    "3 accounts merged (prefetch=0)": merged(0),
}
"""The merge table's rows, in pairs: each merge is compared with the row before it."""


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
    contender = {**CONTENDERS, **MERGES}[name]
    assert asyncio.run(contender(url)) == items
    with Collections() as collections:
        wall, cpu = time.perf_counter(), time.process_time()
        count = asyncio.run(contender(url))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert count == items, (name, count)
    print(wall, cpu, *collections.runs, collections.seconds)


def _measure(
    names: Sequence[str], pages: int, trials: int
) -> dict[str, tuple[Sequence[float], ...]]:
    """Each contender's children's lines, `trials` interleaved runs over `pages` pages,
    as columns: wall, CPU, gen0, gen1 and gen2 runs, seconds collecting."""
    items = pages * PAGE
    results: dict[str, list[list[float]]] = {name: [] for name in names}
    with server_process(items) as url:
        for _ in range(trials):
            for name in names:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks._cpu", url, name, str(items)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.split()
                results[name].append([float(value) for value in out])
    return {name: tuple(zip(*rows, strict=True)) for name, rows in results.items()}


def _row(name: str, column: Sequence[Sequence[float]], items: int) -> list[str]:
    """A contender's wall, CPU, CPU per batch, collections per 1,000 batches and time in them."""
    walls, cpus, *runs, collecting = column
    per_thousand = (f"{statistics.median(gen) / items * 1000:.1f}" for gen in runs)
    return [
        name,
        spread(walls),
        spread(cpus),
        spread([value / items * 1e6 for value in cpus], "{:.2f}"),
        " / ".join(per_thousand),
        spread([value / items * 1e6 for value in collecting], "{:.2f}"),
    ]


_GC = ["GC runs gen0 / 1 / 2 per 1,000 batches", "in GC us/batch"]


def run(pages: int, trials: int) -> str:
    """Measure every contender `trials` times over `pages` pages; return the table."""
    items = pages * PAGE
    column = _measure(list(CONTENDERS), pages, trials)
    cpu = {name: statistics.median(column[name][1]) for name in CONTENDERS}
    rows = []
    for name in CONTENDERS:
        anthropic = name.startswith("Anthropic pages")
        floor_cpu = cpu[ANTHROPIC_FLOOR if anthropic else FLOOR]
        official = cpu[ANTHROPIC if anthropic else OPENAI]
        less = f"{official / cpu[name]:.1f}x less" if cpu[name] < official else "-"
        *measured, runs, collecting = _row(name, column[name], items)
        vs = ["-", less] if anthropic else [less, "-"]
        rows.append([*measured, f"{cpu[name] / floor_cpu:.2f}x", *vs, runs, collecting])
    title = f"CPU per batch, {pages} pages x {PAGE} batches, {trials} interleaved trials"
    headers = [
        "client",
        "wall s",
        "client CPU s",
        "CPU us/batch",
        "vs floor",
        "vs openai",
        "vs anthropic",
        *_GC,
    ]
    note = (
        "The Anthropic rows list the same batches as Message Batches"
        " (`/v1/messages/batches`); their `vs floor` is against the floor of those pages."
    )
    return f"### {title}\n\n" + table(headers, rows) + f"\n\n{note}"


def run_merge(pages: int, trials: int) -> str:
    """Three accounts listed one after another, then merged; return the table."""
    items = pages * PAGE
    column = _measure(list(MERGES), pages, trials)
    rows = []
    names = list(MERGES)
    for index, name in enumerate(names):
        alone = column[names[index - index % 2]][1]  # the pair's one-after-another row
        ratios = [
            merged / sequential for merged, sequential in zip(column[name][1], alone, strict=True)
        ]
        *measured, runs, collecting = _row(name, column[name], items)
        rows.append([*measured, spread(ratios, "{:.3f}x"), runs, collecting])
    title = (
        f"Merging {ACCOUNTS} accounts, {pages} pages x {PAGE} batches in all,"
        f" {trials} interleaved trials"
    )
    headers = ["listing", "wall s", "client CPU s", "CPU us/batch", "vs one after another", *_GC]
    return f"### {title}\n\n" + table(headers, rows)


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
