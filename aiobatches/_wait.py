"""Waiting for named batches to finish, each poll at the cost of the cheaper way to look.

A poll either retrieves each unfinished id or relists newest first down to the
deepest of them. With `u` unfinished ids `p` pages deep, the cheaper costs
`min(u, p)`; the first poll learns `p` by listing while a page costs no more than
the retrievals it saves (at most `2 * min(u, p) + 1` requests). Where each id was
found, or that it lies deeper than the pages read, is kept, so later polls choose
at once: `min(u, p) + 1` when every depth was found (one page more, for batches
created since), else never more than `u`. No rule can promise `min(u, p) + 1` for
an id known only to lie deeper than `k` pages: it may lie on page `k + 1`, where a
relist wins, or far below, where retrieving wins."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from . import _retry
from ._chain import Walk
from ._config import DEFAULT_PAGE_SIZE, check_count, check_seconds
from ._errors import APIError
from ._models import AnyBatch
from ._polling import Source, check_ids, hint_of, retrieve_all, skippable
from ._response import Retrieved
from ._stream import OnInvalid, check_on_invalid, skip_malformed

logger: Final = logging.getLogger("aiobatches")

Observer = Callable[[Any], None]
"""Called with each state of a waited-for batch a wait learns (of its client's model)."""
_observer: contextvars.ContextVar[Observer | None] = contextvars.ContextVar(
    "aiobatches_wait_observer", default=None
)


@contextlib.contextmanager
def observing(observer: Observer) -> Iterator[None]:
    """Call `observer` with each state of a waited-for batch that the waits started in
    this context learn, from their listings and retrievals alike: progress that costs
    no request of its own."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


async def wait_for_batches(
    source: Source,
    batch_ids: Sequence[str],
    *,
    poll_interval: float,
    timeout: float | None,  # noqa: ASYNC109 - the public contract's name for the deadline
    on_invalid: OnInvalid = "raise",
    limit: int = DEFAULT_PAGE_SIZE,
) -> list[Any]:
    """Poll until every batch is finished; the batches in the order given.

    A poll failing with an error the retry policy calls transient is logged and
    tried again at the next poll; any other error ends the wait. The deadline is
    read from the clock that drives aiobatches' sleeps (the loop's by default).
    """
    ids = check_ids("batch_ids", batch_ids)
    interval = check_seconds("poll_interval", poll_interval)
    if timeout is not None:
        check_seconds("timeout", timeout)
    limit = check_count("limit", limit, low=1, high=source.dialect.max_limit)
    waiter = _Waiter(source, ids, limit, check_on_invalid(on_invalid))
    if not ids:
        return []
    deadline = None if timeout is None else _retry.now() + timeout
    # In real time the loop's timeout also bounds a request in flight; a clock that drives
    # the sleeps has no say over requests, which their own timeout bounds.
    async with asyncio.timeout(None if _retry.clock_driven() else timeout):
        while True:
            try:
                hint = await waiter.poll()
            except APIError as error:
                if not error.retryable:
                    raise
                logger.warning("a wait's poll failed; trying again at the next poll: %s", error)
                hint = hint_of(error)
            if waiter.done:
                return waiter.results()
            pause = _retry.pause(interval, hint)
            if deadline is not None and pause >= (left := deadline - _retry.now()):
                await _retry.sleep(max(left, 0.0))
                raise TimeoutError
            await _retry.sleep(pause)


class _Waiter:
    """One wait: the latest of each batch, and how deep each unfinished one lies."""

    def __init__(self, source: Source, ids: list[str], limit: int, on_invalid: OnInvalid) -> None:
        self._source = source
        self._order = ids
        self._limit = limit
        self._on_invalid = on_invalid
        self._latest: dict[str, AnyBatch] = {}
        self._depth: dict[str, int] = {}
        """Per id, the page it was last listed on, or one past the pages a listing read
        without finding it: how many pages a relist needs, at least."""
        self._found: set[str] = set()
        """The ids whose depth a listing found, rather than only bounded from above."""
        self._hint: float | None = None
        self._observer = _observer.get()

    @property
    def done(self) -> bool:
        return all(self._finished(i) for i in self._order)

    def results(self) -> list[Any]:
        return [self._latest[i] for i in self._order]

    def _finished(self, batch_id: str) -> bool:
        batch = self._latest.get(batch_id)
        return batch is not None and batch.is_finished

    async def poll(self) -> float | None:
        """One poll, by the cheaper way; returns the pause the server asked for, if any."""
        self._hint = None
        pending = list(dict.fromkeys(i for i in self._order if not self._finished(i)))
        if all(i in self._depth for i in pending):
            # Known depth: relist one page past the ids a listing found (new batches may
            # have pushed them down) and retrieve those only known to lie deeper, when that
            # costs less than retrieving each; never list again to probe for the latter.
            found = [self._depth[i] for i in pending if i in self._found]
            unfound = len(pending) - len(found)
            if found and max(found) + 1 + unfound <= len(pending):
                missing = await self._relist(pending, max(found) + 1)
            else:
                missing = pending
        elif len(pending) == 1:
            missing = pending  # no listing can beat one request
        else:
            missing = await self._relist(pending, None)
        await self._retrieve(missing)
        return self._hint

    async def _relist(self, pending: list[str], most: int | None) -> list[str]:
        """List newest first until every pending id is found, or `most` pages, or (with no
        `most`, depth unknown) until the pages read reach the retrievals still needed;
        returns the ids not found, noting how deep they lie at least."""
        wanted = set(pending)
        pages = 0
        walk = Walk(self._source.fetch_page, self._limit)
        while (fetched := await walk.next_page()) is not None:
            pages += 1
            for batch in fetched.parsed.batches:
                if batch.id in wanted:
                    wanted.discard(batch.id)
                    self._learn(batch)
                    self._depth[batch.id] = pages
                    self._found.add(batch.id)
            for item, error in zip(fetched.parsed.invalid, fetched.errors, strict=True):
                # A malformed batch not waited for never blocks the wait: skipped.
                if item.batch_id in self._order and self._on_invalid == "raise":
                    raise error
                skip_malformed(error)
                if item.batch_id in wanted:  # found, and nothing learnt
                    wanted.discard(item.batch_id)
                    self._depth[item.batch_id] = pages
                    self._found.add(item.batch_id)
            self._hint = fetched.poll_after or self._hint
            if not wanted or pages >= (len(wanted) if most is None else most):
                break
        for batch_id in wanted:
            self._depth[batch_id] = pages + 1
            self._found.discard(batch_id)
        return [batch_id for batch_id in pending if batch_id in wanted]

    def _learn(self, batch: AnyBatch) -> None:
        """Keep the latest state of a waited-for batch, and tell the observer."""
        self._latest[batch.id] = batch
        if self._observer is not None:
            self._observer(batch)

    async def _retrieve(self, batch_ids: list[str]) -> None:
        """Retrieve each id concurrently: a final failure ends the poll at once; else the
        batches read are kept, and a transient failure then ends the poll."""
        transient = []
        for _, result in await retrieve_all(self._source, batch_ids, final=self._final):
            if isinstance(result, Retrieved):
                self._learn(result.batch)
                self._hint = result.poll_after or self._hint
            elif skippable(result, self._on_invalid):
                skip_malformed(result)
            else:
                transient.append(result)
        if transient:
            raise transient[0]

    def _final(self, _: str, error: APIError) -> bool:
        """Whether a retrieval's error ends the poll at once: neither transient nor a
        malformed batch `on_invalid` skips."""
        return not (error.retryable or skippable(error, self._on_invalid))
