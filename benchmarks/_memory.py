"""Memory: peak RSS of a client process streaming N batches, less its RSS after import.

Each N runs in a fresh client process (`python -m benchmarks._memory URL N`)
against a server that generates batches on the fly.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiobatches

from ._common import server_process, table

KEY = "sk-bench"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


async def _stream(url: str, count: int) -> int:
    seen = 0
    async with aiobatches.Client(api_key=KEY, base_url=url) as client:
        async for _ in client.list_batches(max_items=count):
            seen += 1
    return seen


def child(url: str, count: int) -> None:
    """In the client process (aiobatches already imported): stream, then print the RSS
    after import and the peak RSS in KiB."""
    after_import = _status_kib("VmRSS")
    assert asyncio.run(_stream(url, count)) == count
    print(after_import, _status_kib("VmHWM"))


def run(counts: tuple[int, ...]) -> str:
    rows = []
    with server_process(max(counts), generated=True) as url:
        for count in counts:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks._memory", url, str(count)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            after_import, peak = int(out[0]), int(out[1])
            rows.append(
                [
                    f"{count:,}",
                    f"{after_import / 1024:.1f}",
                    f"{peak / 1024:.1f}",
                    f"{(peak - after_import) / 1024:.1f}",
                ]
            )
    headers = ["batches streamed", "RSS after import MiB", "peak RSS MiB", "growth MiB"]
    return "### Memory of a client process\n\n" + table(headers, rows)


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]))
