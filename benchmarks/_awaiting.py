"""The cost of awaiting as the history grows: a watch cycle and a wait poll, against the
naive loop (list everything again, compare) in the same run.

The account holds 50 unfinished batches on top of 1,000 / 10,000 / 100,000 finished
ones. Each contender runs in a fresh client process: after its first look, it is
measured over a few cycles or polls, counting requests (an aiohttp trace) and client
CPU. The sleeps between them are skipped, so only the work is measured, and the
garbage of the first look is collected before measuring starts (it is that look's cost).

Two edge cases follow, counted exactly on a scripted server in this process: a wait on
ids lying deep (its cost per poll), and a watch that one vanished batch would pin (its
state and cost after many cycles).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
from aiohttp import web

import aiobatches
from aiobatches import _retry
from aiobatches.testing import synthetic_batches

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


class _Account:
    """A scripted list and retrieve endpoint over real HTTP; the test edits `batches`."""

    def __init__(self) -> None:
        self.batches: list[dict[str, object]] = []
        """Newest first."""
        self.unlisted: set[str] = set()
        """Batches a retrieve finds but the listing no longer shows."""
        self.requests = 0

    async def list(self, request: web.Request) -> web.Response:
        self.requests += 1
        listed = [b for b in self.batches if b["id"] not in self.unlisted]
        after = request.query.get("after")
        start = 0 if after is None else [b["id"] for b in listed].index(after) + 1
        limit = int(request.query["limit"])
        window = listed[start : start + limit]
        body = {
            "object": "list",
            "data": window,
            "first_id": window[0]["id"] if window else None,
            "last_id": window[-1]["id"] if window else None,
            "has_more": start + limit < len(listed),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def retrieve(self, request: web.Request) -> web.Response:
        self.requests += 1
        wanted = request.match_info["batch_id"]
        batch = next(b for b in self.batches if b["id"] == wanted)
        return web.Response(body=orjson.dumps(batch), content_type="application/json")


def _batch(number: int, status: str, created_at: int) -> dict[str, object]:
    batch = dict(synthetic_batches(1, seed=number)[0])
    batch.update(id=f"batch_{number:08d}", status=status, created_at=created_at)
    return batch


@contextlib.asynccontextmanager
async def _serving(account: _Account) -> AsyncIterator[aiobatches.Client]:
    app = web.Application()
    app.router.add_get("/v1/batches", account.list)
    app.router.add_get("/v1/batches/{batch_id}", account.retrieve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with aiobatches.Client(api_key=KEY, base_url=f"http://{host}:{port}/v1") as client:
            yield client
    finally:
        await runner.cleanup()


async def _deep_wait(polls: int) -> list[int]:
    """Requests per poll of a wait on 3 unfinished ids 40 pages deep (100 per page)."""
    account = _Account()
    account.batches = [_batch(i, "completed", 2_000_000 - i) for i in range(4_100)]
    deep = [3_950, 3_960, 3_970]
    for index in deep:
        account.batches[index]["status"] = "in_progress"
    costs: list[int] = []

    async def pause(_: float) -> None:
        costs.append(account.requests - sum(costs))
        if len(costs) == polls:
            for index in deep:
                account.batches[index]["status"] = "completed"

    with _retry.sleeping_through(pause):
        async with _serving(account) as client:
            await client.wait_for_batches([f"batch_{i:08d}" for i in deep])
    return costs


async def _pinned_watch(cycles: int) -> tuple[int, int]:
    """A watch's state (batches held) and requests in its last cycle, after `cycles` cycles
    of 100 new finished batches each, while one old unfinished batch is no longer listed."""
    account = _Account()
    account.batches = [_batch(0, "in_progress", 1_000_000)]
    marks: list[int] = []
    held = 0

    async def pause(_: float) -> None:
        nonlocal held
        marks.append(account.requests)
        held = len(watch._state.known)
        if len(marks) == 1:
            account.unlisted.add("batch_00000000")
        if len(marks) > cycles:
            raise _Enough
        start = 1_000_000 + 100 * len(marks)
        news = [_batch(len(marks) * 100 + k, "completed", start + k) for k in range(100)]
        account.batches[:0] = reversed(news)

    with _retry.sleeping_through(pause), contextlib.suppress(_Enough):
        async with _serving(account) as client, client.watch_batches() as watch:
            async for _ in watch:
                pass
    return held, marks[-1] - marks[-2]


def edges(*, polls: int, cycles: int) -> str:
    """The wait's cost per poll on deep ids, and the watch's state with a vanished batch."""
    costs = asyncio.run(_deep_wait(polls))
    held, per_cycle = asyncio.run(_pinned_watch(cycles))
    headers = ["case", "measured"]
    rows = [
        ["wait, 3 ids 40 pages deep: requests on the first poll", str(costs[0])],
        [
            "wait, 3 ids 40 pages deep: requests on each later poll",
            " / ".join(str(cost) for cost in costs[1:]),
        ],
        [
            f"watch after {cycles} cycles of 100 new batches, one batch vanished: batches held",
            f"{held:,}",
        ],
        [f"the same watch: requests in cycle {cycles}", str(per_cycle)],
    ]
    title = "Awaiting's edge cases, counted exactly (a scripted server, one run)"
    return f"### {title}\n\n" + table(headers, rows)


if __name__ == "__main__":
    child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
