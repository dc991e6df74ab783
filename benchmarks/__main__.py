"""Run every benchmark and print the results as Markdown: `python -m benchmarks [--quick]`."""

from __future__ import annotations

import argparse
import os
import platform
import sys

import aiohttp

from . import _awaiting, _cpu, _imports, _latency, _memory, _structuring


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds' smoke run")
    args = parser.parse_args()
    quick = args.quick
    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}, {platform.platform()}\n"
        f"Command: python -m benchmarks{' --quick' if quick else ''}\n",
        flush=True,
    )
    sections = (
        lambda: _cpu.run(pages=5 if quick else 200, trials=1 if quick else 7),
        lambda: _structuring.run(loops=5 if quick else 500, trials=1 if quick else 21),
        lambda: _latency.run(pages=5 if quick else 50, trials=1 if quick else 7),
        lambda: _memory.run((2_000,) if quick else (20_000, 200_000)),
        lambda: _imports.run(trials=2 if quick else 15),
        lambda: _awaiting.run(
            (1_000,) if quick else (1_000, 10_000, 100_000),
            cycles=1 if quick else 3,
            trials=1 if quick else 3,
        ),
    )
    for section in sections:
        print(section() + "\n", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
