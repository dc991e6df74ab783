"""Import time: `import X` in fresh interpreters, interleaved, medians."""

from __future__ import annotations

import statistics
import subprocess
import sys

from ._common import spread, table

MODULES = ("aiohttp", "aiobatches", "openai")
_PROBE = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def run(trials: int) -> str:
    times: dict[str, list[float]] = {module: [] for module in MODULES}
    for _ in range(trials):
        for module in MODULES:
            out = subprocess.run(
                [sys.executable, "-c", _PROBE.format(module)],
                capture_output=True,
                text=True,
                check=True,
            )
            times[module].append(float(out.stdout) * 1000)
    base = statistics.median(times["aiohttp"])
    rows = [
        [
            f"import {module}",
            spread(times[module], "{:.1f}"),
            f"{statistics.median(times[module]) / base:.2f}x",
        ]
        for module in MODULES
    ]
    headers = ["statement", "ms", "vs aiohttp"]
    return f"### Import time, {trials} fresh interpreters each\n\n" + table(headers, rows)
