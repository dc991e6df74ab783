"""Latency hiding: how close each prefetch depth gets to the ideal overlap of fetching and working.

The server holds each page back a delay; the consumer then works on each
page, either awaiting (async work) or blocking the event loop (CPU-bound
work). Steady scenarios keep both fixed; in the others the server's delay
jitters with an occasional slow page, or the work comes in bursts, so a
deeper buffer of fetched pages can absorb what one page cannot. `chain` is
the same stream with no work: the fetch chain alone, delays and parsing
included. With N pages the ideal is `max(chain, N * work) + chain / N`:
fetching and working fully overlapped, plus the first page that nothing can
hide. `N * work` is the work the consumer actually did (timers overshoot by
up to a millisecond per page).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import tracemalloc
from typing import NamedTuple

import orjson

import aiobatches
from aiobatches._converter import parse_page
from aiobatches.testing import synthetic_batches

from ._common import server_process, spread, table

KEY = "sk-bench"
PAGE = 100
DEPTHS = (0, 1, 2, 3)


class Scenario(NamedTuple):
    """Per-page server delays and consumer work in ms, each cycled over the pages."""

    label: str
    delays: tuple[int, ...]
    work: tuple[int, ...]
    style: str = "async"


def jittery(pages: int) -> tuple[int, ...]:
    """Delays of 5-10 ms, with one page in each run of eight held back 60 ms (seeded)."""
    rng = random.Random(42)  # reproducible noise: the same delays for every depth and trial
    delays: list[int] = []
    while len(delays) < pages:
        run = [rng.randint(5, 10) for _ in range(7)]
        run.insert(rng.randrange(8), 60)
        delays += run
    return tuple(delays[:pages])


def scenarios(pages: int) -> tuple[Scenario, ...]:
    """Steady delays and work first, then the variable ones where depth beyond 1 may pay."""
    return (
        Scenario("20/20 async", (20,), (20,)),
        Scenario("40/20 async", (40,), (20,)),
        Scenario("20/40 async", (20,), (40,)),
        Scenario("20/20 blocking", (20,), (20,), "blocking"),
        Scenario("5-10, 1 in 8 at 60 / 20 async", jittery(pages), (20,)),
        Scenario("20 / 80,5,5,5,5 async", (20,), (80, 5, 5, 5, 5)),
    )


async def stream(
    url: str, pages: int, scenario: Scenario, *, prefetch: int, work: bool = True
) -> tuple[float, float]:
    """Wall seconds to consume `pages` pages working on each as the scenario says, and the
    work done."""
    started = time.perf_counter()
    worked = 0.0
    delays = ",".join(map(str, scenario.delays))
    async with aiobatches.Client(
        api_key=KEY, base_url=url, default_query={"delay_ms": delays}
    ) as client:
        count = 0
        async for _page in client.list_batches(limit=PAGE, prefetch=prefetch).pages():
            seconds = scenario.work[count % len(scenario.work)] / 1000 if work else 0.0
            count += 1
            began = time.perf_counter()
            if scenario.style == "blocking":
                time.sleep(seconds)  # noqa: ASYNC251 - stands in for CPU-bound work
            elif seconds:
                await asyncio.sleep(seconds)
            worked += time.perf_counter() - began
    assert count == pages
    return time.perf_counter() - started, worked


def buffered_page_bytes() -> int:
    """Memory one waiting page holds: a page of realistic batches, parsed from its body."""
    body = orjson.dumps({"object": "list", "data": synthetic_batches(PAGE, seed=42)})
    tracemalloc.start()
    try:
        page = parse_page(orjson.loads(body))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(page.batches) == PAGE
    return held


def run(pages: int, trials: int) -> str:
    """Measure every prefetch depth against the ideal for each scenario."""
    rows = []
    names = [f"prefetch={depth}" for depth in DEPTHS]
    with server_process(pages * PAGE) as url:
        asyncio.run(stream(url, pages, Scenario("warm-up", (0,), (0,)), prefetch=1))
        for scenario in scenarios(pages):
            chains: list[float] = []
            walls: dict[str, list[float]] = {name: [] for name in names}
            worked: list[float] = []
            for _ in range(trials):
                chains.append(asyncio.run(stream(url, pages, scenario, prefetch=0, work=False))[0])
                for depth, name in zip(DEPTHS, names, strict=True):
                    wall, done = asyncio.run(stream(url, pages, scenario, prefetch=depth))
                    walls[name].append(wall)
                    worked.append(done)
            chain = statistics.median(chains)
            ideal = max(chain, statistics.median(worked)) + chain / pages
            rows += [
                [
                    scenario.label,
                    name,
                    spread(walls[name]),
                    f"{ideal:.3f}",
                    f"{statistics.median(walls[name]) / ideal:.3f}x",
                ]
                for name in names
            ]
            rows.append([scenario.label, "chain (no work)", spread(chains), "", ""])
    title = f"Latency hiding, {pages} pages, {trials} interleaved trials"
    headers = ["delay/work ms", "stream", "wall s", "ideal s", "vs ideal"]
    held = buffered_page_bytes() / 1024
    note = (
        f"Each page waiting in the prefetch buffer holds {held:,.0f} KiB"
        f" ({PAGE} realistic batches, parsed; tracemalloc)."
    )
    return f"### {title}\n\n" + table(headers, rows) + f"\n\n{note}"
