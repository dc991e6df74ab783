"""What `aiobatches watch` has seen: every unfinished batch, the latest finished ones, a
count of all, and when the latest change happened by the server's own clock.

However long the watch runs, the board holds its unfinished batches and at most
`2 * _KEEP_FINISHED` finished ones: a finished batch is counted once, and held only
while it is among the latest.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from typing import TYPE_CHECKING, Final

from .. import BatchEvent
from .._models import AnyBatch, created_moment
from ._view import creation_order, view_of

if TYPE_CHECKING:
    from ._listen import Tally

_KEEP_FINISHED: Final = 500
"""Finished batches kept for showing (no screen is taller); the count covers them all."""


class Board:
    """What the watch has seen of the batches whose status is in `statuses` (all when
    empty); a batch that moves to another status leaves the board."""

    def __init__(self, statuses: Collection[str] = ()) -> None:
        self.statuses = frozenset(statuses)
        self.unfinished: dict[str, AnyBatch] = {}
        self.finished: dict[str, AnyBatch] = {}
        self.finished_count = 0
        """Finished batches shown (of a status in `statuses`), including those no longer held."""
        self.seen_any = False
        """Whether any event has come: the first look is over once one has."""
        self.last_change: int | None = None
        """When, by the server's clock, the latest status change shown happened: the same
        clock as the batches' own times, never this machine's."""
        self.note: str | None = None
        """The latest warning, shown at the bottom (a cycle that failed and will be retried)."""
        self.webhooks: Tally | None = None
        """With `--listen`, where webhooks are received and how many were."""

    def see(self, event: BatchEvent[AnyBatch]) -> None:
        batch = event.batch
        held = self.unfinished.pop(batch.id, None) or self.finished.pop(batch.id, None)
        # What the board last saw of this batch: held, or else (a finished one dropped from
        # the latest) the watch's previous state of it. Its state, not the event's
        # transition, says whether it was counted.
        before = held if held is not None else event.previous
        if before is not None and before.is_finished and self._shows(before):
            self.finished_count -= 1
        self.seen_any = True
        if not self._shows(batch):
            return
        reached = reached_at(batch)
        if self.last_change is None or reached > self.last_change:
            self.last_change = reached
        if not batch.is_finished:
            self.unfinished[batch.id] = batch
            return
        self.finished_count += 1
        self.finished[batch.id] = batch
        if len(self.finished) > 2 * _KEEP_FINISHED:
            latest = heapq.nlargest(_KEEP_FINISHED, self.finished.values(), key=_finish_order)
            self.finished = {kept.id: kept for kept in latest}

    def _shows(self, batch: AnyBatch) -> bool:
        return not self.statuses or view_of(batch).status(batch) in self.statuses

    def latest_unfinished(self) -> list[AnyBatch]:
        """Unfinished batches, newest first (as the API lists them)."""
        return sorted(self.unfinished.values(), key=creation_order, reverse=True)

    def latest_finished(self, count: int) -> list[AnyBatch]:
        """The `count` batches that finished last, the most recently finished first."""
        return heapq.nlargest(max(count, 0), self.finished.values(), key=_finish_order)


def reached_at(batch: AnyBatch) -> int:
    """When `batch` reached its status, in Unix seconds by its own time stamps (its kind's
    view says which)."""
    return view_of(batch).reached(batch)


def _finish_order(batch: AnyBatch) -> tuple[int, float, str]:
    return reached_at(batch), created_moment(batch), batch.id
