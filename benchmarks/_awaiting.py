"""The cost of awaiting as the history grows: a watch cycle and a wait poll, against the
naive loop (list everything again, compare) in the same run.

The account holds 50 unfinished batches on top of 1,000 / 10,000 / 100,000 finished
ones. Each contender runs in a fresh client process: after its first look, it is
measured over a few cycles or polls, counting requests (an aiohttp trace) and client
CPU. The sleeps between them are skipped, so only the work is measured, and the
garbage of the first look is collected before measuring starts (it is that look's cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import subprocess
import sys
import time

import aiohttp

import aiobatches
from aiobatches import _retry

from ._common import server_process, spread, table

KEY = "sk-bench"
UNFINISHED = 50
KINDS = ("watch", "wait", "naive")


class _Enough(Exception):  # noqa: N818 - a signal that the measured cycles are done
    """Raised from the pause after the last measured cycle."""


async def measure(url: str, kind: str, cycles: int) -> tuple[float, float]:
    """Requests and client CPU milliseconds per cycle, after the first look."""
    requests = 0

    async def count(*_: object) -> None:
        nonlocal requests
        requests += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(count)
    marks: list[tuple[int, float]] = []

    async def pause(_: float) -> None:
        if not marks:  # the first look's garbage is the first look's cost, not a cycle's
            gc.collect()
        marks.append((requests, time.process_time()))
        if len(marks) > cycles:
            raise _Enough

    token = _retry._sleeper.set(pause)
    try:
        async with (
            aiohttp.ClientSession(trace_configs=[trace]) as session,
            aiobatches.Client(api_key=KEY, base_url=url, session=session) as client,
        ):
            with contextlib.suppress(_Enough):
                await _run(client, kind)
    finally:
        _retry._sleeper.reset(token)
    (first_requests, first_cpu), (last_requests, last_cpu) = marks[0], marks[-1]
    return (last_requests - first_requests) / cycles, (last_cpu - first_cpu) / cycles * 1000


async def _run(client: aiobatches.Client, kind: str) -> None:
    if kind == "watch":
        async for _ in client.watch_batches(poll_interval=0):
            pass
    elif kind == "wait":
        ids = [f"batch_{index:024d}" for index in range(UNFINISHED)]
        await client.wait_for_batches(ids, poll_interval=0)
    else:  # what users write without aiobatches' help
        previous: dict[str, aiobatches.Batch] = {}
        while True:
            current = {batch.id: batch async for batch in client.list_batches()}
            changed = [i for i, batch in current.items() if previous.get(i) != batch]
            assert changed or previous
            previous = current
            await _retry.sleep(0)


def child(url: str, kind: str, cycles: int) -> None:
    """In a fresh client process: print requests and CPU ms per cycle."""
    requests, cpu = asyncio.run(measure(url, kind, cycles))
    print(requests, cpu)


def run(histories: tuple[int, ...], cycles: int, trials: int) -> str:
    """One row per history size; every contender measured `trials` times, interleaved."""
    rows = []
    for finished in histories:
        requests: dict[str, list[float]] = {kind: [] for kind in KINDS}
        cpus: dict[str, list[float]] = {kind: [] for kind in KINDS}
        with server_process(finished + UNFINISHED, unfinished=UNFINISHED) as url:
            for _ in range(trials):
                for kind in KINDS:
                    out = subprocess.run(
                        [sys.executable, "-m", "benchmarks._awaiting", url, kind, str(cycles)],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.split()
                    requests[kind].append(float(out[0]))
                    cpus[kind].append(float(out[1]))
        per = {kind: statistics.median(requests[kind]) for kind in KINDS}
        rows.append(
            [
                f"{finished:,}",
                *(f"{per[kind]:g} / {spread(cpus[kind], '{:.1f}')}" for kind in KINDS),
                f"{per['naive'] / per['watch']:,.0f}x",
            ]
        )
    title = (
        f"Awaiting as the history grows: {UNFINISHED} unfinished batches on top,"
        f" per cycle after the first look ({cycles} cycles, {trials} interleaved trials)"
    )
    headers = [
        "finished batches",
        "watch cycle: requests / CPU ms",
        "wait poll: requests / CPU ms",
        "naive relist: requests / CPU ms",
        "naive / watch requests",
    ]
    return f"### {title}\n\n" + table(headers, rows)


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
