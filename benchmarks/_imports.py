"""Import time: `import X` in fresh interpreters, interleaved, medians.

Every module is timed with its bytecode already compiled, as an installed package
has it: an editable checkout on a machine that sets `PYTHONDONTWRITEBYTECODE`
would otherwise compile aiobatches afresh on every run while its dependencies,
compiled by pip at install, would not.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

from ._common import spread, table

MODULES = ("aiohttp", "aiobatches", "openai")
_PROBE = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"


def run(trials: int) -> str:
    times: dict[str, list[float]] = {module: [] for module in MODULES}
    with tempfile.TemporaryDirectory() as bytecode:
        env = {**os.environ, "PYTHONPYCACHEPREFIX": bytecode}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for _ in range(trials + 1):  # the first round compiles, as an install would
            for module in MODULES:
                out = subprocess.run(
                    [sys.executable, "-c", _PROBE.format(module)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=env,
                )
                times[module].append(float(out.stdout) * 1000)
    times = {module: took[1:] for module, took in times.items()}
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
