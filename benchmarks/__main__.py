"""Run the benchmarks and print the results as Markdown:
`python -m benchmarks [--quick] [--only SECTION ...]`."""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Callable

import aiohttp

from . import _awaiting, _cpu, _imports, _latency, _memory, _pushed, _structuring

SECTIONS = ("cpu", "merge", "structuring", "latency", "memory", "imports", "awaiting", "pushed")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few seconds' smoke run")
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    args = parser.parse_args()
    quick = args.quick
    chosen = args.only or list(SECTIONS)
    options = "".join(f" --only {name}" for name in args.only or ())
    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"aiohttp {aiohttp.__version__}, {platform.platform()}\n"
        f"Command: python -m benchmarks{' --quick' if quick else ''}{options}\n",
        flush=True,
    )
    sections: dict[str, Callable[[], str]] = {
        "cpu": lambda: _cpu.run(pages=5 if quick else 200, trials=1 if quick else 7),
        "merge": lambda: _cpu.run_merge(pages=6 if quick else 200, trials=1 if quick else 15),
        "structuring": lambda: _structuring.run(
            loops=5 if quick else 500, trials=1 if quick else 21
        ),
        "latency": lambda: _latency.run(pages=5 if quick else 50, trials=1 if quick else 7),
        "memory": lambda: _memory.run((2_000,) if quick else (20_000, 200_000)),
        "imports": lambda: _imports.run(trials=2 if quick else 15),
        "awaiting": lambda: (
            _awaiting.run(
                (1_000,) if quick else (1_000, 10_000, 100_000),
                cycles=1 if quick else 3,
                trials=1 if quick else 3,
            )
            + "\n\n"
            + _awaiting.edges(polls=3, cycles=20 if quick else 200)
        ),
        "pushed": lambda: _pushed.run(
            speed=600, window=1_200 if quick else 86_400, every=60 if quick else 864
        ),
    }
    for name in SECTIONS:
        if name in chosen:
            print(sections[name]() + "\n", flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
