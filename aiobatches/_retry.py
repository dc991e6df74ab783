"""When to retry a request, how long to wait first, and the loop that does it.

Pure decisions over statuses and headers; an attempt returns a `Failure`
saying whether it is worth another try, and `retrying` acts on it. One sleep
indirection lets tests (ours and our users') record delays instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import email.utils
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Final, TypeVar

from attrs import frozen

from ._errors import APIError

logger: Final = logging.getLogger("aiobatches")
T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 409, 429})
MAX_SERVER_DELAY = 120.0
"""A server asking for a longer pause is not waited for: the caller decides (as openai-python)."""

_INITIAL_BACKOFF = 0.5
_MAX_BACKOFF = 8.0
_MAX_DOUBLINGS = 4
"""0.5 * 2**4 already reaches the 8 s cap; larger exponents would only risk overflow."""
_JITTER = 0.25

Sleeper = Callable[[float], Awaitable[None]]
_sleeper: contextvars.ContextVar[Sleeper] = contextvars.ContextVar(
    "aiobatches_sleeper", default=asyncio.sleep
)
_clock: contextvars.ContextVar[Callable[[], float] | None] = contextvars.ContextVar(
    "aiobatches_clock", default=None
)


@frozen
class Failure:
    """An attempt that yielded nothing usable: the error to raise, and whether to try again."""

    error: APIError
    retry: bool
    """The policy's verdict: whether the failure is transient, worth another try."""
    delay: float | None = None
    """The server's requested delay, when it gave a usable one."""


async def retrying(
    attempt: Callable[[int], Awaitable[T | Failure]], *, max_retries: int, what: str
) -> T:
    """Run `attempt(retries_done)` until it succeeds, fails for good, or the budget is spent."""
    retries = 0
    while True:
        outcome = await attempt(retries)
        if not isinstance(outcome, Failure):
            return outcome
        delay = outcome.delay if outcome.delay is not None else backoff(retries)
        if not outcome.retry or retries >= max_retries or delay > MAX_SERVER_DELAY:
            # The verdict travels with the error: a poller tries again later on it.
            outcome.error.retryable = outcome.retry
            raise outcome.error
        logger.info(
            "retrying %s after %s (retry %d of %d) in %.3fs",
            what,
            type(outcome.error).__name__,
            retries + 1,
            max_retries,
            delay,
        )
        await sleep(delay)
        retries += 1


def should_retry(status: int, headers: Mapping[str, str]) -> bool:
    """Retry 408, 409, 429 and 5xx, unless `x-should-retry` says otherwise."""
    override = headers.get("x-should-retry", "").strip().lower()
    if override == "true":
        return True
    if override == "false":
        return False
    return status in RETRYABLE_STATUSES or status >= 500


def server_delay(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The delay the server asked for in seconds, or None when absent or unusable.

    `retry-after-ms` wins over `retry-after`; the latter is seconds or an HTTP date.
    Non-finite, zero, negative and unparsable values count as absent.
    """
    millis = _positive_float(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _positive_float(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw)
        if when.tzinfo is None:  # "-0000" means UTC with no zone given, never local time
            when = when.replace(tzinfo=datetime.UTC)
        stamp = when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    delta = stamp - (time.time() if now is None else now)
    return delta if delta > 0 else None


def poll_after(headers: Mapping[str, str]) -> float | None:
    """The pause the server asks pollers for (`openai-poll-after-ms`), in seconds, if usable."""
    millis = _positive_float(headers.get("openai-poll-after-ms"))
    return None if millis is None else millis / 1000


def pause(interval: float, hint: float | None) -> float:
    """How long a poller rests: its interval, or longer when the server asked for more
    (`Retry-After`, `openai-poll-after-ms`), though never above `MAX_SERVER_DELAY`."""
    return interval if hint is None else max(interval, min(hint, MAX_SERVER_DELAY))


def backoff(retries_done: int, *, jitter: float | None = None) -> float:
    """Exponential backoff `min(0.5 * 2**n, 8)`, less up to 25% jitter."""
    base = min(_INITIAL_BACKOFF * 2.0 ** min(retries_done, _MAX_DOUBLINGS), _MAX_BACKOFF)
    fraction = random.random() if jitter is None else jitter  # noqa: S311 - jitter, not crypto
    return base * (1 - _JITTER * fraction)


async def sleep(delay: float) -> None:
    """Wait before a retry through the current sleeper (real `asyncio.sleep` by default)."""
    await _sleeper.get()(delay)


def clock_driven() -> bool:
    """Whether a clock other than the loop's drives aiobatches' sleeps and deadlines."""
    return _clock.get() is not None


def now() -> float:
    """The time deadlines are measured in: the clock driving the sleeps, else the loop's."""
    clock = _clock.get()
    return asyncio.get_running_loop().time() if clock is None else clock()


@contextlib.contextmanager
def recorded_sleeps() -> Iterator[list[float]]:
    """Within the block, retries record their delays in the yielded list and do not wait."""
    delays: list[float] = []

    async def record(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0)

    token = _sleeper.set(record)
    try:
        yield delays
    finally:
        _sleeper.reset(token)


@contextlib.contextmanager
def sleeping_through(
    sleeper: Sleeper, *, clock: Callable[[], float] | None = None
) -> Iterator[None]:
    """Within the block, aiobatches' sleeps go through `sleeper`, and deadlines (a wait's
    `timeout`) are read from `clock` when given: the clock those sleeps advance, say."""
    token = _sleeper.set(sleeper)
    clock_token = _clock.set(clock)
    try:
        yield
    finally:
        _clock.reset(clock_token)
        _sleeper.reset(token)


def _positive_float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None
