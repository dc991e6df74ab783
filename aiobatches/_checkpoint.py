"""A watch's state as a small JSON-able dict, and back: what a restarted service resumes.

A checkpoint holds exactly what the events handed out so far told: each followed
unfinished batch as last reported, the horizon, and a *mark*: the newest second the
ended cycles looked at, lowered to the oldest batch an untold event was about. Every
batch created before the mark was reported (or needs no event), so a resumed watch
that meets one finished and unknown knows it finished before; the finished batches
reported at or above the mark are named (one second holds many). Its size grows with
the unfinished batches and those created since the last cycle, never with the
history; a first look not yet done names what it reported instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from ._converter import parse_page, unstructure_batch
from ._dialect import OPENAI, Dialect
from ._models import B, created_second
from ._polling import check_ids
from ._watchstate import BatchEvent, WatchState, unix_seconds

VERSION: Final = 1


def dump(
    state: WatchState,
    queued: Iterable[BatchEvent[Any]],
    first_told: Iterable[str],
    dialect: Dialect[Any],
) -> dict[str, Any]:
    """The checkpoint of `state` as the consumer knows it: `queued` events not handed out
    yet are undone (a batch they report is as before them, or unknown). `first_told`
    names the batches a first look not all handed out has reported (the state may have
    let go of the finished ones already)."""
    told = dict(state.known)
    untold: list[int] = []  # creation seconds of batches reported by no handed-out event
    queued = list(queued)
    # A first look whose "existing" events are not all out is not done, as the consumer
    # knows it: the resumed watch looks again, naming what was reported.
    cycles = 0 if any(event.kind == "existing" for event in queued) else state.cycles
    for event in _first_per_batch(queued):
        if event.previous is None:
            told.pop(event.batch.id, None)
            untold.append(created_second(event.batch))
        else:
            told[event.batch.id] = event.previous
    finished = [batch for batch in told.values() if batch.is_finished]
    mark: int | None = None
    if cycles:  # every batch above the horizon was looked at: a mark says which
        newest = max((created_second(batch) for batch in told.values()), default=None)
        marks = (newest, state.newest, min(untold, default=None), state.seen_mark)
        mark = min((m for m in marks if m is not None), default=None)
    seen = {batch.id for batch in finished if mark is None or created_second(batch) >= mark}
    unfinished = [batch for batch in told.values() if not batch.is_finished]
    if not cycles:  # all a look not done reported, but the unfinished kept in full
        seen |= set(first_told) - {batch.id for batch in unfinished}
    return {
        "version": VERSION,
        "api": dialect.name,
        "since": state.since,
        "ids": None if state.ids is None else sorted(state.ids),
        "cycles": cycles,
        "horizon": state.horizon if cycles else None,  # a look not done lists everything
        "mark": mark,
        "seen": sorted(seen | state.seen_ids),
        "batches": [unstructure_batch(batch) for batch in unfinished],
        "by_retrieval": sorted(state.by_retrieval & {batch.id for batch in unfinished}),
        "unreadable": dict(sorted(state.unreadable.items())),
        "ended": sorted(state.ended),
    }


def load(checkpoint: object, dialect: Dialect[Any]) -> WatchState:
    """The watch state a checkpoint holds, of a watch of `dialect`'s API; a ValueError
    naming what is wrong with one that is malformed, of another version or another API."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(  # noqa: TRY004 - the contract: a malformed checkpoint is a ValueError
            f"resume must be a checkpoint dict, got {type(checkpoint).__name__}"
        )
    if checkpoint.get("version") != VERSION:
        raise ValueError(f"resume: unknown checkpoint version {checkpoint.get('version')!r}")
    api = checkpoint.get("api", OPENAI.name)  # saved before there were two: OpenAI's
    if api != dialect.name:
        raise ValueError(f"resume: a checkpoint of a watch of {api!r}, not of {dialect.name}")
    since = checkpoint.get("since")
    ids = checkpoint.get("ids")
    if isinstance(since, bool) or not isinstance(since, int | float | None):
        raise ValueError("resume: since must be Unix seconds or null")  # noqa: TRY004
    if ids is not None and not isinstance(ids, list):
        raise ValueError("resume: ids must be a list of batch ids or null")
    state = WatchState(
        since=unix_seconds(since), ids=None if ids is None else frozenset(_ids("ids", ids))
    )
    state.cycles = _whole(checkpoint, "cycles")
    state.horizon = _second(checkpoint, "horizon")
    state.seen_mark = _second(checkpoint, "mark")
    state.newest = state.seen_mark
    state.seen_ids = set(_ids("seen", checkpoint.get("seen")))
    state.known = {batch.id: batch for batch in _batches(checkpoint.get("batches"), dialect.model)}
    state.by_retrieval = set(_ids("by_retrieval", checkpoint.get("by_retrieval")))
    state.ended = set(_ids("ended", checkpoint.get("ended")))
    unreadable = checkpoint.get("unreadable")
    if not isinstance(unreadable, Mapping) or not all(
        isinstance(flag, bool) for flag in unreadable.values()
    ):
        raise ValueError("resume: unreadable must map batch ids to true or false")
    state.unreadable = dict(
        zip(_ids("unreadable", list(unreadable)), unreadable.values(), strict=True)
    )
    if not state.by_retrieval <= state.known.keys():
        raise ValueError("resume: by_retrieval names a batch the checkpoint does not hold")
    return state


def _first_per_batch(events: Iterable[BatchEvent[Any]]) -> list[BatchEvent[Any]]:
    """The first of the events about each batch, in order."""
    firsts: dict[str, BatchEvent[Any]] = {}
    for event in events:
        firsts.setdefault(event.batch.id, event)
    return list(firsts.values())


def _whole(checkpoint: Mapping[str, Any], key: str) -> int:
    value = checkpoint.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"resume: {key} must be a whole number")
    return value


def _second(checkpoint: Mapping[str, Any], key: str) -> int | None:
    """A creation second (whole Unix seconds, before 1970 too), or None."""
    value = checkpoint.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"resume: {key} must be whole Unix seconds or null")  # noqa: TRY004
    return value


def _ids(key: str, value: object) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"resume: {key} must be a list of batch ids")  # noqa: TRY004
    try:
        return check_ids(f"resume {key}", value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"resume: {error}") from None


def _batches(value: object, model: type[B]) -> list[B]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError("resume: batches must be a list of batch objects")
    parsed = parse_page({"data": [dict(item) for item in value]}, model)
    if parsed.invalid:
        raise ValueError(f"resume: a batch is malformed: {parsed.invalid[0].problem}")
    if any(batch.is_finished for batch in parsed.batches):
        raise ValueError("resume: batches holds a finished batch")
    return parsed.batches
