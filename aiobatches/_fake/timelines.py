"""How one batch lives: a seeded timeline drawn at its creation, and when batches are created.

A timeline fixes at a batch's creation when it will pass each status and how
its request counts will grow, so what the batch looks like at time t is a pure
function of its timeline and t, and once finished it never changes again.
`history` draws the batches created before a clock's start, `Arrivals` those
created after it, block by block, so a clock jump draws only the blocks it needs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from typing import Any, Final

from attrs import frozen

from .._models import FINISHED_STATUSES
from .._synthetic import (
    ENDPOINTS,
    NULL_ERRORS_OBJECT_SHARE,
    draw_errors,
    draw_keys,
    draw_metadata,
    draw_model,
    file_id,
)

DAY: Final = 86_400
"""The completion window: a batch not done a day after its creation expires."""
USAGE_SINCE: Final = 1_757_203_200
"""2025-09-07: batches created before it carry no `usage` key."""

_FAILED_SHARE: Final = 0.06
"""Batches whose input fails validation."""
_CANCELLED_SHARE: Final = 0.06
_USAGE_SHARE: Final = 0.85
"""Of the batches that report usage at all, those that report it once done."""
_SPANS: Final = ((0.45, 60, 900), (0.35, 900, 3 * 3_600), (0.20, 3 * 3_600, 30 * 3_600))
"""Processing times: (share, shortest, longest) seconds: quick, medium and long batches, so a
demo shows progress within minutes while some batches run for hours (and some expire)."""
_HISTORY_GAP: Final = (30, 1_200)
"""Seconds between the creations of successive past batches."""
_STAMPS: Final = {
    "in_progress": "in_progress_at",
    "finalizing": "finalizing_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelling": "cancelling_at",
    "cancelled": "cancelled_at",
}
"""The timestamp each status sets when the batch reaches it."""
_LATER_STAMPS: Final = tuple(name for name in _STAMPS.values() if name != "in_progress_at")
"""The timestamps the API sends after `expires_at`, in its order."""
_CURVE_KNOTS: Final = 4
_BLOCK: Final = 1_024
"""Arrivals per block of time, on average. Each block draws from a seed of its own, so a
clock jump skips the blocks too old to be served; the first block's arrivals are those
every seed gave before there were blocks."""
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "validating": frozenset({"in_progress", "failed", "cancelling"}),
    "in_progress": frozenset({"finalizing", "expired", "cancelling"}),
    "finalizing": frozenset({"completed"}),
    "cancelling": frozenset({"cancelled"}),
}
"""The status changes a living batch makes; finished statuses have none."""


@frozen
class _Work:
    """How a started batch's requests get done: `total` of them, from `start` to `end` along
    a seeded curve, until `stop` (its end, or when it was cancelled or expired)."""

    start: int
    end: int
    stop: int
    total: int
    fail_rate: float
    curve: tuple[float, ...]
    """Done fractions at evenly spaced points of the run, from 0 up to 1."""

    def done(self, t: float) -> tuple[int, int]:
        """(completed, failed) at `t`: never decreasing, never above `total`."""
        x = (min(t, self.stop) - self.start) / (self.end - self.start)
        if x >= 1:
            done = self.total
        else:
            segments = len(self.curve) - 1
            where = max(x, 0.0) * segments
            index = min(int(where), segments - 1)
            low, high = self.curve[index], self.curve[index + 1]
            done = min(int(self.total * (low + (high - low) * (where - index))), self.total)
        failed = int(done * self.fail_rate)
        return done - failed, failed


@frozen
class Timeline:
    """One batch's whole life, drawn at its creation; `at(t)` is how it looks then."""

    id: str
    created_at: int
    steps: tuple[tuple[int, str], ...]
    """(when, status) after `validating`, in order; the last one is final."""
    work: _Work | None
    """None when the batch never started (it failed or was cancelled while validating)."""
    fixed: Mapping[str, Any]
    """endpoint, model, input_file_id and metadata; `model` absent where real servers omit it."""
    output_file_id: str
    error_file_id: str
    errors: Mapping[str, Any] | None
    usage: tuple[int, int, float, float] | None
    """Input and output tokens per request, cached and reasoning shares, when usage is
    reported once done; None when it stays null."""
    has_usage_key: bool

    @property
    def settled_at(self) -> int:
        """When the batch reaches its final status; it never changes after."""
        return self.steps[-1][0]

    def at(self, t: float) -> dict[str, Any]:
        """The batch as the API sends it at time `t` (at or after its creation)."""
        status = "validating"
        stamps: dict[str, int | None] = dict.fromkeys(_STAMPS.values())
        for when, reached in self.steps:
            if when > t:
                break
            status = reached
            stamps[_STAMPS[reached]] = when
        completed = failed = total = 0
        work = self.work
        if work is not None and t >= work.start:
            total = work.total
            completed, failed = work.done(t)
        finished = status in FINISHED_STATUSES
        kept = finished and status != "failed"
        unfinished = total - completed - failed
        batch: dict[str, Any] = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.fixed["endpoint"],
        }
        if "model" in self.fixed:
            batch["model"] = self.fixed["model"]
        errors = self.errors if status == "failed" else None
        batch["errors"] = None if errors is None else _copy_errors(errors)
        batch["input_file_id"] = self.fixed["input_file_id"]
        batch["completion_window"] = "24h"
        batch["status"] = status
        batch["output_file_id"] = self.output_file_id if kept and completed else None
        has_errors = failed or (status == "expired" and unfinished)
        batch["error_file_id"] = self.error_file_id if kept and has_errors else None
        batch["created_at"] = self.created_at
        batch["in_progress_at"] = stamps["in_progress_at"]
        batch["expires_at"] = self.created_at + DAY
        for name in _LATER_STAMPS:
            batch[name] = stamps[name]
        batch["request_counts"] = {"total": total, "completed": completed, "failed": failed}
        metadata = self.fixed["metadata"]
        batch["metadata"] = None if metadata is None else dict(metadata)
        if self.has_usage_key:
            batch["usage"] = _usage(self.usage, completed) if kept and completed else None
        return batch


def _copy_errors(errors: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh copy, so that a caller changing a look never changes the timeline."""
    return {"object": errors["object"], "data": [dict(error) for error in errors["data"]]}


def _usage(rates: tuple[int, int, float, float] | None, completed: int) -> dict[str, Any] | None:
    if rates is None:
        return None
    per_input, per_output, cached, reasoning = rates
    input_tokens, output_tokens = per_input * completed, per_output * completed
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": int(input_tokens * cached)},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": int(output_tokens * reasoning)},
        "total_tokens": input_tokens + output_tokens,
    }


def _whole(rng: random.Random, low: int, high: int) -> int:
    """A whole number in [low, high]; `randint` costs ten times as much, times 100,000."""
    return low + int(rng.random() * (high - low + 1))


def _between(rng: random.Random, low: float, high: float) -> int:
    """A whole number of seconds, log-uniform in [low, high]: most spans short, a few long."""
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def draw_timeline(rng: random.Random, created: int, *, nulls: random.Random) -> Timeline:
    """A batch created at `created`, its whole life drawn from `rng`, and from `nulls`
    whether its model is null.

    The null models have a stream of their own so that every other value stays what the
    same seed gave before they followed the static batches' share.
    """
    batch_id = f"batch_{rng.getrandbits(96):024x}"
    endpoint = rng.choice(ENDPOINTS)
    model = draw_model(rng, endpoint)
    input_file_id = file_id(rng)
    metadata = draw_metadata(rng)
    keys = draw_keys(rng, nulls)
    fixed: dict[str, Any] = {"endpoint": endpoint}
    if keys.model:
        fixed["model"] = None if keys.null_model else model
    fixed["input_file_id"] = input_file_id
    fixed["metadata"] = metadata
    has_usage_key = keys.usage
    rates = (
        _whole(rng, 50, 4_000),
        _whole(rng, 5, 1_500),
        rng.random() / 2,
        rng.random() / 2,
    )
    errors = None
    steps: tuple[tuple[int, str], ...]
    work = None
    outcome = rng.random()
    if outcome < _FAILED_SHARE:
        errors = draw_errors(rng)
        if rng.random() < NULL_ERRORS_OBJECT_SHARE:
            errors["object"] = None
        steps = ((created + _between(rng, 3, 120), "failed"),)
    else:
        started = created + _between(rng, 5, 180)
        end = started + _span(rng)
        deadline = created + DAY
        stop = min(end, deadline)
        if outcome < _FAILED_SHARE + _CANCELLED_SHARE:
            cancelling = created + max(1, int((stop - created) * rng.uniform(0.05, 0.95)))
            cancelled = cancelling + _between(rng, 20, 600)
            before = () if cancelling <= started else ((started, "in_progress"),)
            steps = (*before, (cancelling, "cancelling"), (cancelled, "cancelled"))
            stop = cancelling
        elif end > deadline:
            steps = ((started, "in_progress"), (deadline, "expired"))
        else:
            completed = end + _between(rng, 15, 600)
            steps = ((started, "in_progress"), (end, "finalizing"), (completed, "completed"))
        if steps[0][1] == "in_progress":
            work = _Work(
                start=started,
                end=end,
                stop=stop,
                total=_whole(rng, 1, 50_000),
                fail_rate=0.0 if rng.random() < 0.5 else rng.random() / 20,
                curve=_curve(rng),
            )
    return Timeline(
        id=batch_id,
        created_at=created,
        steps=steps,
        work=work,
        fixed=fixed,
        output_file_id=file_id(rng),
        error_file_id=file_id(rng),
        errors=errors,
        usage=rates if has_usage_key and rng.random() < _USAGE_SHARE else None,
        has_usage_key=has_usage_key and created >= USAGE_SINCE,
    )


def _span(rng: random.Random) -> int:
    """Seconds of processing: quick, medium or long."""
    pick = rng.random()
    for share, shortest, longest in _SPANS[:-1]:
        if pick < share:
            return _between(rng, shortest, longest)
        pick -= share
    _, shortest, longest = _SPANS[-1]  # the rest, rounding included
    return _between(rng, shortest, longest)


def _curve(rng: random.Random) -> tuple[float, ...]:
    """Done fractions at evenly spaced points: rising unevenly from 0 to 1, as real runs do."""
    weights = [0.3 + rng.random() for _ in range(_CURVE_KNOTS)]
    total = sum(weights)
    points = [0.0]
    for weight in weights:
        points.append(points[-1] + weight / total)
    points[-1] = 1.0
    return tuple(points)


def history(count: int, *, seed: int, before: float) -> Iterator[Timeline]:
    """`count` batches created before `before`, newest first; same seed, same batches.

    Only batches of the last day can still be unfinished, so how many are does not
    grow with `count`: a long history is finished but for its top. Drawn one at a
    time, so a caller can stop at the oldest it keeps.
    """
    rng = random.Random(f"{seed}-history")  # noqa: S311 - reproducible test data, not secrets
    nulls = random.Random(f"{seed}-history-nulls")  # noqa: S311 - as above
    created = math.floor(before)
    for _ in range(count):
        created -= _whole(rng, *_HISTORY_GAP)
        yield draw_timeline(rng, created, nulls=nulls)


class Arrivals:
    """New batches at seeded times about `every` seconds apart after `start`, in order.

    Time after `start` is cut into blocks of about `_BLOCK` arrivals, each drawn from
    a seed of its own (the first from the seed every arrival once shared), so the
    arrivals of a late span are drawn without those before it: a clock jump draws
    only the blocks still served, never every arrival of the span it jumps.
    """

    def __init__(self, *, seed: int, start: float, every: float) -> None:
        self._seed = seed
        self._start = start
        self._every = every
        self._span = every * _BLOCK
        self._open(0)

    def _open(self, block: int) -> None:
        """Start drawing `block`: its own seed, its first arrival a gap after its start."""
        name = f"{self._seed}-arrivals" + (f"-{block}" if block else "")
        self._rng = random.Random(name)  # noqa: S311 - reproducible test data, not secrets
        self._nulls = random.Random(f"{name}-nulls")  # noqa: S311 - as above
        self._block = block
        self._end = self._start + (block + 1) * self._span
        self._next = self._start + block * self._span + self._gap()

    def _gap(self) -> float:
        return self._every * self._rng.uniform(0.5, 1.5)

    def until(self, t: float, *, since: float = -math.inf) -> Iterator[Timeline]:
        """The batches created after the last call, up to `t`, oldest first, leaving out
        those created before `since` (the blocks wholly before it are never drawn).

        Each is drawn as it is taken, so a caller can encode it before the next; take
        them all before calling again.
        """
        while True:
            if self._end <= since:  # what is left of this block is too old to be served
                skipped = math.floor((since - self._start) / self._span)
                self._open(max(self._block + 1, skipped))
            while self._next <= t and self._next < self._end:
                timeline = draw_timeline(self._rng, math.floor(self._next), nulls=self._nulls)
                self._next += self._gap()
                if timeline.created_at >= since:
                    yield timeline
            if t < self._end:
                return
            self._open(self._block + 1)
