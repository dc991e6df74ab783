"""The clocks a living fake server runs on: a manual one for tests, accelerated real time for demos.

A clock tells the time in Unix seconds and where it started; the server's past batches
were created before its start, so the same clock start gives the same batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator

from .. import _retry
from .._synthetic import EPOCH


class ManualClock:
    """Time that moves only when a test says so (Unix seconds)."""

    def __init__(self, start: float = EPOCH) -> None:
        self._start = self._now = finite_seconds("start", start)

    @property
    def start(self) -> float:
        """Where the clock started: its server's past batches were created before."""
        return self._start

    def now(self) -> float:
        """The current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the time forward by `seconds` (finite, >= 0)."""
        if finite_seconds("seconds", seconds) < 0:
            raise ValueError(f"a clock only moves forward, got {seconds!r} seconds")
        self._now += seconds

    @contextlib.contextmanager
    def driving_sleeps(
        self, before_each: Callable[[float], None] | None = None
    ) -> Iterator[list[float]]:
        """Within the block, aiobatches' own sleeps (retry delays, wait polls, watch cycles, all of
        which go through aiobatches._retry.sleep) do not wait: each calls `before_each(delay)` if
        given, then advances this clock by its delay, then yields to the loop once; the delays
        are recorded in the yielded list."""
        delays: list[float] = []

        async def drive(delay: float) -> None:
            if before_each is not None:
                before_each(delay)
            self.advance(delay)
            delays.append(delay)
            await asyncio.sleep(0)

        with _retry.sleeping_through(drive, clock=self.now):
            yield delays

    def __repr__(self) -> str:
        return f"<ManualClock start={self._start!r} now={self._now!r}>"


class AcceleratedClock:
    """Real time sped up `speed` times, starting at `start`: for demos."""

    def __init__(self, speed: float = 60.0, start: float = EPOCH) -> None:
        if finite_seconds("speed", speed) <= 0:
            raise ValueError(f"speed must be finite and positive, got {speed!r}")
        self.speed = float(speed)
        """How many clock seconds pass in each real second."""
        self._start = finite_seconds("start", start)
        self._origin = time.monotonic()

    @property
    def start(self) -> float:
        """Where the clock started: its server's past batches were created before."""
        return self._start

    def now(self) -> float:
        """`start` plus the real seconds since construction times `speed`."""
        return self._start + (time.monotonic() - self._origin) * self.speed

    def __repr__(self) -> str:
        return f"AcceleratedClock(speed={self.speed!r}, start={self._start!r})"


def finite_seconds(name: str, value: object) -> float:
    """`value` as finite seconds, or a ValueError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be finite seconds, got {value!r}")
    return float(value)
