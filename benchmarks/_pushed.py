"""Pushed against polled: how soon a watch reports a batch finishing, and at what cost.

Three watches follow the same living account, each in a fresh process with its own fake
server (one seed, one accelerated clock whose origin all three share, so their batches
finish at the same server times): one polling every second, one every 15 seconds, and one
reconciling every 600 seconds but woken by webhooks, which an aiohttp.web receiver
verifies (`verify_webhook`) and turns into `watch.notify(batch_id)`; the server drops 10%
of the webhooks (seeded). A batch's finish time is the server's own record
(`completed_at`, `failed_at`, ...); its delay is the server time at which the watch yields
its finishing event, minus that. Each server counts its watch's requests. After the last
finish counted, every watch runs on for one more reconcile cycle before the count of
batches never reported is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
from typing import Any

import orjson
from aiohttp import web

import aiobatches
from aiobatches.testing import AcceleratedClock, FakeBatchesServer, Fault, FaultPlan

from ._common import table

KEY = "sk-bench"
SECRET = "whsec_" + "YmVuY2htYXJrLXNlY3JldC1rZXktMzItYnl0ZXMhIQ=="
SEED = 7
SETTLE = 60
"""Server seconds after the start before finishes count: the first look is over by then."""
KINDS = {"poll 1 s": 1.0, "poll 15 s": 15.0, "webhooks + reconcile 600 s": 600.0}
FINISHED_AT = {status: f"{status}_at" for status in aiobatches.FINISHED_STATUSES}


class _SharedClock(AcceleratedClock):
    """An accelerated clock whose origin is a `time.monotonic()` reading every process shares."""

    def __init__(self, speed: float, start: float, origin: float) -> None:
        super().__init__(speed, start)
        self._shared_origin = origin

    def now(self) -> float:
        return self.start + (time.monotonic() - self._shared_origin) * self.speed


async def follow(
    interval: float, *, speed: float, start: float, origin: float, until: float, every: float
) -> dict[str, Any]:
    """Run one watch until server time `until`; what it reported, and what its server saw."""
    clock = _SharedClock(speed, start, origin)
    pushed = interval >= 600
    reported: dict[str, float] = {}
    received: set[str] = set()
    holder: list[aiobatches.BatchWatch[aiobatches.Batch]] = []

    async def receive(request: web.Request) -> web.Response:
        event = aiobatches.verify_webhook(await request.read(), request.headers, secret=SECRET)
        if event.batch_id is not None:
            received.add(event.batch_id)
            if holder:
                holder[0].notify(event.batch_id)
        return web.Response()

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    webhooks: dict[str, Any] = {}
    if pushed:
        webhooks = {
            "webhook_url": f"http://{host}:{port}/hooks",
            "webhook_secret": SECRET,
            "webhook_faults": FaultPlan(rate=0.1, pool=(Fault.drop(),), seed=SEED),
        }
    server = FakeBatchesServer(
        count=20,
        api_key=KEY,
        seed=SEED,
        clock=clock,
        arrival_every=every,
        record_requests=0,
        **webhooks,
    )
    try:
        async with server:
            await asyncio.sleep(max(origin - time.monotonic(), 0.0))
            async with (
                aiobatches.Client(api_key=KEY, base_url=server.url) as client,
                client.watch_batches(poll_interval=interval / speed) as watch,
            ):
                holder.append(watch)

                async def consume() -> None:
                    async for event in watch:
                        if event.finished:
                            reported.setdefault(event.batch.id, clock.now())

                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout((until - clock.now()) / speed):
                        await consume()
            elapsed = clock.now() - start
            finishes = {
                batch["id"]: batch[FINISHED_AT[batch["status"]]]
                for batch in server.batches
                if batch["status"] in FINISHED_AT
            }
            return {
                "requests": server.request_count,
                "elapsed": elapsed,
                "finishes": finishes,
                "reported": reported,
                "received": sorted(received),
                "dropped": server.webhooks_dropped if pushed else 0,
            }
    finally:
        await runner.cleanup()


def _p95(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]
    )


def _ms(server_seconds: float, speed: float) -> str:
    return f"{server_seconds / speed * 1000:.0f}"


def run(*, speed: float, window: float, every: float) -> str:
    """One row per watch, all three run at once on one shared server timeline."""
    start = AcceleratedClock().start  # the default start, where seeded accounts begin
    origin = time.monotonic() + 2.0  # time for the children to start their servers
    until = start + window + max(KINDS.values()) + 30  # one more reconcile after the last
    children = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks._pushed",
                *(str(v) for v in (interval, speed, start, origin, until, every)),
            ],
            stdout=subprocess.PIPE,
        )
        for name, interval in KINDS.items()
    }
    outputs = {name: child.communicate()[0] for name, child in children.items()}
    for name, child in children.items():
        assert child.returncode == 0, f"{name} failed"
    results = {name: orjson.loads(output) for name, output in outputs.items()}
    dues = set()
    rows = []
    counted = 0
    hours = {name: result["elapsed"] / 3600 for name, result in results.items()}
    polled = results["poll 15 s"]["requests"] / hours["poll 15 s"]
    for name, result in results.items():
        due = {
            batch_id: at
            for batch_id, at in result["finishes"].items()
            if start + SETTLE < at <= start + window
        }
        counted = len(due)
        dues.add(frozenset(due.items()))
        reported = result["reported"]
        lost = sorted(set(due) - set(reported))
        assert not lost, f"{name} never reported {lost}"
        delays = [reported[batch_id] - at for batch_id, at in due.items()]
        per_hour = result["requests"] / hours[name]
        row = [
            name,
            f"{statistics.median(delays):.1f} / {_p95(delays):.1f}",
            "",
            f"{per_hour:,.0f}",
            f"{polled / per_hour:.1f}x",
            str(len(lost)),
        ]
        if name.startswith("webhooks"):
            received = set(result["received"])
            pushed = [reported[i] - at for i, at in due.items() if i in received]
            missed = [reported[i] - at for i, at in due.items() if i not in received]
            assert pushed, "no webhook was delivered"
            cell = f"{_ms(statistics.median(pushed), speed)} / {_ms(_p95(pushed), speed)} ms"
            row[2] = f"{cell} real for {len(pushed)} delivered"
            if missed:
                row[2] += (
                    f"; {statistics.median(missed):.0f} s server (median) for {len(missed)} dropped"
                )
        rows.append(row)
    assert len(dues) == 1, "the three servers' batches finished at different times"
    title = (
        f"Pushed against polled: {counted} batches finishing over {window / 3600:.1f} h of"
        f" server time at {speed:g}x (one run, the three watches at once)"
    )
    headers = [
        "watch",
        "delay median / p95 (server s)",
        "webhooks: delay median / p95",
        "requests per server hour",
        "poll 15 s requests / these",
        "finished, never reported",
    ]
    return f"### {title}\n\n" + table(headers, rows)


if __name__ == "__main__":
    interval, speed, start, origin, until, every = map(float, sys.argv[1:])
    out = asyncio.run(
        follow(interval, speed=speed, start=start, origin=origin, until=until, every=every)
    )
    sys.stdout.buffer.write(orjson.dumps(out))
