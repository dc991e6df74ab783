"""Latency hiding: how close prefetch gets to the ideal overlap of fetching and working.

The server holds each page back `delay` ms; the consumer spends `work` ms
(awaiting, as async work does) on each page. `chain` is the same stream with
no work: the fetch chain alone, delay and parsing included. With N pages the
ideal is `max(chain, N * work) + chain / N`: fetching and working fully
overlapped, plus the first page that nothing can hide.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiobatches

from ._common import server_process, spread, table

KEY = "sk-bench"
SCENARIOS = ((20, 20), (40, 20), (20, 40))


async def stream(url: str, pages: int, delay: int, work: int, prefetch: int) -> float:
    """Wall seconds to consume `pages` pages, working `work` ms on each."""
    started = time.perf_counter()
    async with aiobatches.Client(
        api_key=KEY, base_url=url, default_query={"delay_ms": str(delay)}
    ) as client:
        count = 0
        async for _page in client.list_batches(limit=100, prefetch=prefetch).pages():
            count += 1
            if work:
                await asyncio.sleep(work / 1000)
    assert count == pages
    return time.perf_counter() - started


def run(pages: int, trials: int) -> str:
    """Measure sequential, prefetch 1 and 2 against the ideal for each scenario."""
    rows = []
    with server_process(pages * 100) as url:
        asyncio.run(stream(url, pages, 0, 0, 1))
        for delay, work in SCENARIOS:
            runs: dict[str, list[float]] = {
                "chain": [],
                "prefetch=0": [],
                "prefetch=1": [],
                "prefetch=2": [],
            }
            for _ in range(trials):
                runs["chain"].append(asyncio.run(stream(url, pages, delay, 0, 0)))
                for prefetch in (0, 1, 2):
                    runs[f"prefetch={prefetch}"].append(
                        asyncio.run(stream(url, pages, delay, work, prefetch))
                    )
            chain = statistics.median(runs["chain"])
            ideal = max(chain, pages * work / 1000) + chain / pages
            for name in ("prefetch=0", "prefetch=1", "prefetch=2"):
                rows.append(
                    [
                        f"{delay}/{work}",
                        name,
                        spread(runs[name]),
                        f"{ideal:.3f}",
                        f"{statistics.median(runs[name]) / ideal:.3f}x",
                    ]
                )
            rows.append([f"{delay}/{work}", "chain (no work)", spread(runs["chain"]), "", ""])
    title = f"Latency hiding, {pages} pages, {trials} interleaved trials"
    headers = ["delay/work ms", "stream", "wall s", "ideal s", "vs ideal"]
    return f"### {title}\n\n" + table(headers, rows)
