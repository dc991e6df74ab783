"""Latency hiding: how close prefetch gets to the ideal overlap of fetching and working.

The server holds each page back `delay` ms; the consumer then works `work`
ms on each page, either awaiting (async work) or blocking the event loop
(CPU-bound work). `chain` is the same stream with no work: the fetch chain
alone, delay and parsing included. With N pages the ideal is
`max(chain, N * work) + chain / N`: fetching and working fully overlapped,
plus the first page that nothing can hide. `N * work` is the work the
consumer actually did (timers overshoot by up to a millisecond per page).
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiobatches

from ._common import server_process, spread, table

KEY = "sk-bench"
SCENARIOS = ((20, 20, "async"), (40, 20, "async"), (20, 40, "async"), (20, 20, "blocking"))
STREAMS = ("prefetch=0", "prefetch=1", "prefetch=2")


async def stream(
    url: str, pages: int, *, delay: int, work: int, style: str, prefetch: int
) -> tuple[float, float]:
    """Wall seconds to consume `pages` pages working `work` ms on each, and the work done."""
    started = time.perf_counter()
    worked = 0.0
    async with aiobatches.Client(
        api_key=KEY, base_url=url, default_query={"delay_ms": str(delay)}
    ) as client:
        count = 0
        async for _page in client.list_batches(limit=100, prefetch=prefetch).pages():
            count += 1
            began = time.perf_counter()
            if style == "blocking":
                time.sleep(work / 1000)  # noqa: ASYNC251 - stands in for CPU-bound work
            elif work:
                await asyncio.sleep(work / 1000)
            worked += time.perf_counter() - began
    assert count == pages
    return time.perf_counter() - started, worked


def run(pages: int, trials: int) -> str:
    """Measure sequential, prefetch 1 and 2 against the ideal for each scenario."""
    rows = []
    with server_process(pages * 100) as url:
        asyncio.run(stream(url, pages, delay=0, work=0, style="async", prefetch=1))
        for delay, work, style in SCENARIOS:
            chains: list[float] = []
            walls: dict[str, list[float]] = {name: [] for name in STREAMS}
            worked: list[float] = []
            for _ in range(trials):
                chain_run = stream(url, pages, delay=delay, work=0, style=style, prefetch=0)
                chains.append(asyncio.run(chain_run)[0])
                for prefetch, name in enumerate(STREAMS):
                    wall, done = asyncio.run(
                        stream(url, pages, delay=delay, work=work, style=style, prefetch=prefetch)
                    )
                    walls[name].append(wall)
                    worked.append(done)
            chain = statistics.median(chains)
            ideal = max(chain, statistics.median(worked)) + chain / pages
            scenario = f"{delay}/{work} {style}"
            rows += [
                [
                    scenario,
                    name,
                    spread(walls[name]),
                    f"{ideal:.3f}",
                    f"{statistics.median(walls[name]) / ideal:.3f}x",
                ]
                for name in STREAMS
            ]
            rows.append([scenario, "chain (no work)", spread(chains), "", ""])
    title = f"Latency hiding, {pages} pages, {trials} interleaved trials"
    headers = ["delay/work ms", "stream", "wall s", "ideal s", "vs ideal"]
    return f"### {title}\n\n" + table(headers, rows)
