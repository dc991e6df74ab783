"""What every benchmark shares: the server process, statistics and table printing."""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def server_process(
    count: int, *, generated: bool = False, unfinished: int | None = None
) -> Iterator[str]:
    """Start `benchmarks._server` in its own process and yield its base URL."""
    command = [sys.executable, "-m", "benchmarks._server", "--count", str(count)]
    if generated:
        command.append("--generated")
    if unfinished is not None:
        command += ["--unfinished", str(unfinished)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"benchmark server did not start: {url!r}")
        yield url
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        finally:
            assert process.stdout is not None
            process.stdout.close()


def spread(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    """`median (min-max)` of some measurements."""
    return (
        f"{fmt.format(statistics.median(values))} "
        f"({fmt.format(min(values))}-{fmt.format(max(values))})"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
