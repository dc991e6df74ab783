"""Merging streams: `merge` hands out several accounts' batches as one list, newest first.

Invariant: every source lists newest first, so the next batch of the merge is the first,
by `(-created_moment, source's place in the mapping)`, of the sources' next batches.
The merge holds exactly one batch per source (its head, read with `anext`, so it sits
on the stream's current page: no page of the merge's own beyond what each stream
prefetches), and reads a source's next head only once its previous one is handed out,
so each source keeps its own order and an error is raised where that source's next
batch would sort. `cursors` name the last batch handed out of each source, never the
head read ahead, so resuming a source after them has no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import typing
from collections.abc import Mapping
from typing import Any, Generic, NoReturn, Protocol, Self, TypeVar

from ._closing import ClosedByExit, CloseOnce
from ._errors import AIOBatchesError
from ._models import AnyBatch, created_moment
from ._stream import BatchStream

_B = TypeVar("_B", bound=AnyBatch)
_B_co = TypeVar("_B_co", bound=AnyBatch, covariant=True)


class _Source(Protocol[_B_co]):
    """What the merge uses of a stream; covariant, so that streams of OpenAI's and
    Anthropic's batches merge into one of either."""

    @property
    def cursor(self) -> str | None: ...

    async def __anext__(self) -> _B_co: ...

    async def aclose(self) -> None: ...


class Merged(ClosedByExit, Generic[_B]):
    """Several streams as one async iterator of `(source, batch)`, newest first.

    Ties in creation time come in the order the mapping names the sources, then in
    each source's own order. Closing it (`aclose()`, leaving `async with`, an error,
    cancellation) closes every source. An error from a source is raised after every
    batch that sorts before it, with `error.source` naming the source.
    """

    def __init__(self, streams: Mapping[str, _Source[_B]]) -> None:
        self._streams = dict(streams)
        self._cursors = {name: stream.cursor for name, stream in self._streams.items()}
        self._place = {name: place for place, name in enumerate(self._streams)}
        self._heads: list[tuple[float, int, str, _B]] = []
        """Each source's next batch, keyed newest first, then by the mapping's order (a
        key no two heads share: a source has one at a time)."""
        self._unread = list(self._streams)
        """Sources whose next batch must be read before the next one is handed out."""
        self._closing: CloseOnce | None = None
        self._stopped_early: str | None = None
        self._taking = False

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Merged sources={list(self._streams)!r} {state}>"

    @property
    def closed(self) -> bool:
        """Whether the merge was closed (by `aclose()`, exhaustion, an error or cancellation)."""
        return self._closing is not None

    @property
    def cursors(self) -> dict[str, str | None]:
        """Each source's `cursor`: the id of its last batch handed out by the merge (its
        stream's cursor before the merge if none); `after=cursors[source]` resumes it
        with no gap or repeat, after an error too."""
        return dict(self._cursors)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> tuple[str, _B]:
        if self._closing is not None:
            self._refuse_if_stopped_early()
            raise StopAsyncIteration
        if self._taking:
            raise RuntimeError("this merge is already being iterated by another task")
        self._taking = True
        fresh = None
        try:
            unread = self._unread
            if len(unread) == 1:  # as a rule: the source of the batch handed out last
                try:
                    fresh = await self._next_of(unread[0])
                except Exception as error:  # noqa: BLE001 - raised again, after the stop
                    await self._fail(unread[0], error)
            else:  # the start: every source's first page, fetched together
                failed = await self._read(unread)
                if failed is not None:
                    await self._fail(*failed)
        except asyncio.CancelledError:
            await self._stop("its consumer was cancelled")
            raise
        finally:
            self._taking = False
        self._unread = []
        heads = self._heads
        if self.closed:  # closed by another task meanwhile
            await self.aclose()
            self._refuse_if_stopped_early()
            raise StopAsyncIteration
        if fresh is not None:
            _, _, source, batch = heapq.heappushpop(heads, fresh)
        elif heads:
            _, _, source, batch = heapq.heappop(heads)
        else:  # exhausted
            await self.aclose()
            raise StopAsyncIteration
        self._cursors[source] = batch.id
        self._unread = [source]
        return source, batch

    async def _next_of(self, source: str) -> tuple[float, int, str, _B] | None:
        """The source's next batch as a heap entry, None when it is exhausted; its error
        is raised with the source named in it."""
        try:
            batch = await anext(self._streams[source])
        except StopAsyncIteration:
            return None
        except Exception as error:
            _name(error, source)
            raise
        return (-created_moment(batch), self._place[source], source, batch)

    async def _fail(self, source: str, error: Exception) -> NoReturn:
        """Stop the merge because `source` failed, and raise its error."""
        await self._stop(f"source {source!r} failed with {type(error).__name__}")
        raise error

    async def _read(self, sources: list[str]) -> tuple[str, Exception] | None:
        """Read the next batch of each source onto the heap, all at once (at the start,
        so that every source's first page is fetched together). Returns the error of the
        first source, in the mapping's order, that failed."""
        if not sources:  # no source at all
            return None
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(self._read_one(source), name=f"aiobatches merge reads {source}")
            for source in sources
        ]
        try:
            await asyncio.wait(tasks)
        finally:  # cancelled: the reads stop with us
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        failures = [task.result() for task in tasks]  # a read cancelled from outside raises
        return next((failed for failed in failures if failed is not None), None)

    async def _read_one(self, source: str) -> tuple[str, Exception] | None:
        """Put the source's next batch on the heap (nothing if it is exhausted), or return
        its error, named, for the merge to raise in its turn."""
        try:
            entry = await self._next_of(source)
        except Exception as error:  # noqa: BLE001 - returned to be raised in its turn
            return source, error
        if entry is not None:
            heapq.heappush(self._heads, entry)
        return None

    def _refuse_if_stopped_early(self) -> None:
        """End quietly after a deliberate close; refuse to look complete after an early stop."""
        if self._stopped_early is not None:
            raise RuntimeError(
                f"this merge stopped early because {self._stopped_early};"
                " list each source again with after=merged.cursors[source] to continue"
            )

    async def _stop(self, why: str) -> None:
        """Close, remembering that the merge was cut short and why."""
        if self._closing is None:
            self._stopped_early = why
        await self.aclose()

    async def aclose(self) -> None:
        """Close every source (each cancels and awaits its page request); idempotent."""
        if self._closing is None:
            self._heads = []
            self._closing = CloseOnce(self._close_sources, "aiobatches merge close")
        await self._closing()

    async def _close_sources(self) -> None:
        for stream in self._streams.values():
            await stream.aclose()


@typing.overload
def merge(streams: Mapping[str, _Source[_B]]) -> Merged[_B]: ...
# mypy calls this one unreachable, yet it is what types a literal mapping of OpenAI's and
# Anthropic's streams (as `Merged[Batch | MessageBatch]`): without it that is an error.
@typing.overload
def merge(  # type: ignore[overload-cannot-match]
    streams: Mapping[str, _Source[AnyBatch]],
) -> Merged[AnyBatch]: ...
def merge(streams: Mapping[str, _Source[Any]]) -> Merged[Any]:
    """Interleave streams of this library (any clients, accounts or APIs) newest first.

    `async for source, batch in merged` gives each batch with the name its stream has in
    `streams`; ties in creation time come in the mapping's order, then each source's own.
    The merge holds at most one page per source beyond each stream's own prefetch.

    Args:
        streams: source name to stream, e.g. `{"prod": prod.list_batches()}`; the merge
            owns them from now on, and closing it closes them.

    Raises:
        TypeError: `streams` is not a mapping of names to streams of this library.
        ValueError: one stream is given under two names.
    """
    if not isinstance(streams, Mapping):
        raise TypeError(
            f"merge() takes a mapping of names to streams, got {type(streams).__name__}"
        )
    for name, stream in streams.items():
        _check_source(name, stream)
    if len({id(stream) for stream in streams.values()}) < len(streams):
        raise ValueError("merge() was given one stream under two names; list it once")
    return Merged(streams)


def _check_source(name: object, stream: object) -> None:
    """Refuse a source that is not a stream of this library, named by a `str`."""
    if not isinstance(name, str):
        raise TypeError(f"merge() takes sources named by str, got {name!r}")
    if not isinstance(stream, BatchStream):
        raise TypeError(
            f"merge() takes streams of this library (list_batches()), got"
            f" {type(stream).__name__} for source {name!r}"
        )


def _name(error: Exception, source: str) -> None:
    """Name in `error.source` the merge's source that raised it (and, for an error not of
    this library, in a note too), so that the caller can tell which account failed."""
    if isinstance(error, AIOBatchesError):
        error.source = source
    else:  # a usage error, say (its client closed): named too, where it can be
        with contextlib.suppress(AttributeError):  # an exception with __slots__
            error.source = source  # type: ignore[attr-defined]
        error.add_note(f"raised by the merge's source {source!r}")
