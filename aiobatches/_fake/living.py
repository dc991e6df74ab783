"""The batches a fake server holds, and how they look at its clock's time.

`LivingBatches` keeps batches oldest first, adds seeded arrivals on top as its
clock moves, holds each batch as its bytes once it can no longer change, and
lets go of batches older than its retention, so its memory stays bounded
however long it lives and however far its clock jumps. It hands out pages as
encoded batches; a dialect wraps them in its own envelope. Each time it reads
its clock it tells who listens which batches finished since the last reading
(a `Finish` each), in the order they finished.
"""

from __future__ import annotations

import array
import bisect
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import orjson
from attrs import frozen

from .. import _synthetic
from .._body import dumps, loads_exact
from .clocks import AcceleratedClock, ManualClock
from .timelines import DAY, Arrivals, Timeline, history

RETENTION: Final = 7 * DAY
"""How long a living server serves the batches it drew, unless told otherwise."""


@frozen
class Page:
    """One page of batches, newest first: their ids, their encoded bodies, and whether
    more lie beyond it (older ones beneath; for a page above a batch, newer ones above)."""

    ids: Sequence[str]
    bodies: Sequence[bytes]
    has_more: bool
    ranks: Sequence[int] = ()
    """Each batch's rank among those created before it in the same second (0: the first);
    empty: all 0."""


@frozen(order=True)
class Finish:
    """A batch reaching its final status: when, which, and which status."""

    at: int
    batch_id: str
    status: str


def populate(
    batches: Sequence[Mapping[str, Any]] | None,
    *,
    count: int,
    seed: int,
    clock: ManualClock | AcceleratedClock | None,
    every: float,
    retention: float | None,
    on_finish: Callable[[list[Finish]], None] | None = None,
) -> LivingBatches:
    """The batches a server holds: given or synthetic, static or living on `clock`,
    telling `on_finish` of the batches that finish as it lives."""
    if clock is None:
        given = _synthetic.draw_batches(count, seed=seed) if batches is None else batches
        return LivingBatches(given, now=_never)
    # From the clock's start, not from now: the same batches however late the server is
    # made, on every run of a demo.
    start = math.floor(clock.start)
    return LivingBatches(
        () if batches is None else batches,
        history(count, seed=seed, before=start) if batches is None else (),
        now=clock.now,
        arrivals=Arrivals(seed=seed, start=start, every=every) if every else None,
        retention=RETENTION if retention is None else retention,
        on_finish=on_finish,
    )


def _never() -> float:
    """The time of a server without a clock: its batches look the same at every time."""
    return 0.0


class LivingBatches:
    """The batches a server holds, oldest first, as they look at its clock's time.

    A batch's place is its index from the oldest ever held, so places stay valid as
    arrivals are appended on top and old batches vanish beneath them. Given batches
    lie at the bottom and never change nor vanish; drawn ones (the history and the
    arrivals) vanish once created more than `retention` seconds ago. A batch that can
    no longer change is held only as its encoded bytes; only the others are kept as
    timelines, and recomputed per request.

    At each reading of the clock, `on_finish` (when given) hears of the drawn batches
    that finished since the previous reading (or since it was made), in the order of
    their finishing: those settled from timelines held, and those arriving already
    finished. A batch that vanishes before it finishes is heard of never.
    """

    def __init__(
        self,
        given: Iterable[Mapping[str, Any]] = (),
        past: Iterable[Timeline] = (),
        *,
        now: Callable[[], float],
        arrivals: Arrivals | None = None,
        retention: float = math.inf,
        on_finish: Callable[[list[Finish]], None] | None = None,
    ) -> None:
        """Hold `given` and `past`, each newest first, the past back to `retention` ago."""
        self._now = now
        self._on_finish = on_finish
        self._arrivals = arrivals
        self._retention = retention
        self._given_ids: list[str] = []
        self._given: list[bytes] = []
        given_created: list[object] = []
        for batch in given:
            self._given_ids.append(batch["id"])
            self._given.append(_held(batch))
            given_created.append(batch.get("created_at"))
        self._given_ids.reverse()
        self._given.reverse()
        given_created.reverse()
        # Each batch's rank within its second, fixed when it is first held, so that a
        # dialect with finer times can order the batches of one second as they were made.
        self._given_ranks = _ranks(given_created)
        self._ranks = array.array("q")
        self._places: dict[str, int] = {}
        # With repeated ids, `after` means the oldest one, as the list endpoint always did.
        for place, batch_id in enumerate(self._given_ids):
            self._places.setdefault(batch_id, place)
        # The drawn batches, oldest first, from place `_floor` up; a finished one as its bytes.
        self._floor = len(self._given)
        self._ids: list[str] = []
        self._cells: list[bytes | Timeline] = []
        self._created = array.array("q")
        self._unsettled: list[tuple[int, int]] = []  # a heap of (settled_at, place)
        t = self._born = now()
        since = t - retention
        # Newest first, each finished one encoded as it is drawn, so that a long past is
        # never held as timelines all at once; then turned oldest first.
        for timeline in itertools.takewhile(lambda drawn: drawn.created_at >= since, past):
            self._ids.append(timeline.id)
            self._created.append(timeline.created_at)
            self._cells.append(_cell(timeline, t))
        self._ids.reverse()
        self._created.reverse()
        self._cells.reverse()
        self._ranks.extend(_ranks(self._created))
        for index, cell in enumerate(self._cells):
            place = self._floor + index
            self._places.setdefault(self._ids[index], place)
            if isinstance(cell, Timeline):
                self._unsettled.append((cell.settled_at, place))
        heapq.heapify(self._unsettled)

    def _append(
        self, timelines: Iterable[Timeline], t: float, finished: list[Finish] | None
    ) -> None:
        """Hold `timelines` (oldest first, none older than those held) on top, noting in
        `finished` (when given) those finished by `t` since these batches were made."""
        for timeline in timelines:
            place = self._floor + len(self._ids)
            same = bool(self._created) and self._created[-1] == timeline.created_at
            self._ranks.append(self._ranks[-1] + 1 if same else 0)
            self._ids.append(timeline.id)
            self._places.setdefault(timeline.id, place)
            self._created.append(timeline.created_at)
            cell = _cell(timeline, t)
            self._cells.append(cell)
            if isinstance(cell, Timeline):
                heapq.heappush(self._unsettled, (cell.settled_at, place))
            elif finished is not None and timeline.settled_at > self._born:
                finished.append(_finish(timeline))

    def _time(self) -> float:
        """The time now, with every batch created by then present, and none too old; those
        that finished since the last reading told to `on_finish`."""
        t = self._now()
        since = t - self._retention
        finished: list[Finish] | None = None if self._on_finish is None else []
        if self._arrivals is not None:
            self._append(self._arrivals.until(t, since=since), t, finished)
        self._forget(since)
        self._settle(t, finished)
        if finished and self._on_finish is not None:
            finished.sort()
            self._on_finish(finished)
        return t

    def catch_up(self) -> None:
        """Read the clock: arrive, vanish and finish as of now, whether or not asked for
        a batch, so that `on_finish` hears of finished batches without a request."""
        self._time()

    def _forget(self, since: float) -> None:
        """Let go of the drawn batches created before `since`: they are no longer served."""
        gone = bisect.bisect_left(self._created, since)
        if not gone:
            return
        for index, batch_id in enumerate(self._ids[:gone]):
            if self._places.get(batch_id) == self._floor + index:
                del self._places[batch_id]
        del self._ids[:gone], self._cells[:gone], self._created[:gone], self._ranks[:gone]
        self._floor += gone

    def _settle(self, t: float, finished: list[Finish] | None) -> None:
        """Encode the batches finished by `t` once, and let go of their timelines; note
        each in `finished` when given."""
        while self._unsettled and self._unsettled[0][0] <= t:
            _, place = heapq.heappop(self._unsettled)
            index = place - self._floor
            if index >= 0:  # else it grew too old before it finished
                cell = self._cells[index]
                assert isinstance(cell, Timeline)  # each place is pushed once, when unsettled
                self._cells[index] = _held(cell.at(t))
                if finished is not None:
                    finished.append(_finish(cell))

    def place(self, batch_id: str) -> int | None:
        """Where a batch sits (stable as batches arrive), or None for an unknown id."""
        self._time()
        return self._places.get(batch_id)

    def page(self, after: int | None, limit: int) -> Page:
        """`limit` batches below place `after` (None: from the top), newest first."""
        t = self._time()
        top = self._floor + len(self._ids) if after is None else after
        places = list(itertools.islice(self._below(top), limit + 1))
        has_more = len(places) > limit
        del places[limit:]
        return self._page(places, has_more=has_more, t=t)

    def page_above(self, before: int, limit: int) -> Page:
        """The `limit` batches just above place `before`, newest first; `has_more` when
        newer ones lie above them."""
        t = self._time()
        places = list(itertools.islice(self._above(before), limit + 1))
        has_more = len(places) > limit
        del places[limit:]
        places.reverse()
        return self._page(places, has_more=has_more, t=t)

    def _page(self, places: list[int], *, has_more: bool, t: float) -> Page:
        """The batches at `places` (newest first) as a page."""
        return Page(
            ids=[self._id(place) for place in places],
            bodies=[self._body(place, t) for place in places],
            has_more=has_more,
            ranks=[self._rank(place) for place in places],
        )

    def get(self, batch_id: str) -> bytes | None:
        """The encoded batch with this id as it is now, or None for an unknown id."""
        t = self._time()
        place = self._places.get(batch_id)
        return None if place is None else self._body(place, t)

    def rank(self, batch_id: str) -> int:
        """The batch's rank among those created before it in the same second (0 if unknown)."""
        place = self._places.get(batch_id)
        return 0 if place is None else self._rank(place)

    def snapshot(self) -> list[Mapping[str, Any]]:
        """Every batch served now, newest first."""
        t = self._time()
        drawn = [
            _decode(cell) if isinstance(cell, bytes) else cell.at(t)
            for cell in reversed(self._cells)
        ]
        return drawn + [_decode(body) for body in reversed(self._given)]

    def _below(self, top: int) -> Iterator[int]:
        """The places beneath `top`, newest first: the drawn batches, then the given ones."""
        yield from range(top - 1, self._floor - 1, -1)
        yield from range(min(top, len(self._given)) - 1, -1, -1)

    def _above(self, bottom: int) -> Iterator[int]:
        """The places above `bottom`, oldest first: the given batches, then the drawn ones."""
        given = len(self._given)
        yield from range(bottom + 1, given)
        yield from range(max(bottom + 1, self._floor), self._floor + len(self._ids))

    def _rank(self, place: int) -> int:
        """The rank within its second of the batch at `place`."""
        given = len(self._given)
        return self._given_ranks[place] if place < given else self._ranks[place - self._floor]

    def _id(self, place: int) -> str:
        """The id of the batch at `place`."""
        given = len(self._given)
        return self._given_ids[place] if place < given else self._ids[place - self._floor]

    def _body(self, place: int, t: float) -> bytes:
        """The batch at `place` encoded as it is at `t`."""
        if place < len(self._given):
            return self._given[place]
        cell = self._cells[place - self._floor]
        return cell if isinstance(cell, bytes) else dumps(cell.at(t))


def _ranks(created: Sequence[object]) -> array.array[int]:
    """Each batch's rank among the batches before it (oldest first) of the same second."""
    ranks = array.array("q")
    for index, moment in enumerate(created):
        same = index > 0 and moment is not None and created[index - 1] == moment
        ranks.append(ranks[-1] + 1 if same else 0)
    return ranks


def _cell(timeline: Timeline, t: float) -> bytes | Timeline:
    """How a drawn batch is held at `t`: as its bytes once finished, else as its timeline."""
    return _held(timeline.at(t)) if timeline.settled_at <= t else timeline


def _finish(timeline: Timeline) -> Finish:
    """How a batch's life ends: its final status and when it reaches it."""
    at, status = timeline.steps[-1]
    return Finish(at=at, batch_id=timeline.id, status=status)


def _held(batch: Mapping[str, Any]) -> bytes:
    """`batch` encoded to be held for good: a copy of exactly its length, as orjson's own
    result keeps a buffer of about 8 KiB whatever its length."""
    return bytes(memoryview(dumps(batch)))


def _decode(body: bytes) -> Any:
    """A held batch as a dict again, integers beyond 64 bits exact."""
    exact = loads_exact(body)
    return orjson.loads(body) if exact is None else exact
