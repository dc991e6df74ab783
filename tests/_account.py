"""A model OpenAI account for the watch's tests, served over real HTTP on 127.0.0.1.

Its batches fall in few creation seconds and are listed newest first, in any order
within a second (an order the test may redraw between cycles, stable within one
listing); they progress, vanish from the listing (still retrievable, or gone for
good) and come back; and any request can be made to fail as real servers fail.
Pagination is keyset-like: `after` names a place in the order, even the place of a
batch the listing no longer shows, so a cursor stays good while pages shift.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final, Literal

import attrs
import orjson
from _helpers import LoopbackServer
from aiohttp import web

import aiobatches
from aiobatches import _retry
from aiobatches._converter import make_converter
from aiobatches.testing import synthetic_batches

KEY: Final = "sk-account-0123456789"
NOW: Final = 1_763_000_000
FINISHED: Final = frozenset({"completed", "failed", "expired", "cancelled"})
STATUSES: Final = (
    "validating",
    "in_progress",
    "finalizing",
    "cancelling",
    "paused",  # a status the API might add later: unfinished, as every unknown one
    "completed",
    "failed",
    "expired",
    "cancelled",
)
MOVES: Final[Mapping[str, tuple[str, ...]]] = {
    # Where an unfinished status may go next; staying put moves only the counts (or nothing).
    "validating": ("in_progress", "in_progress", "failed", "cancelling", "validating"),
    "in_progress": ("in_progress", "in_progress", "finalizing", "expired", "cancelling", "paused"),
    "paused": ("in_progress", "paused"),
    "finalizing": ("completed", "completed", "finalizing"),
    "cancelling": ("cancelled", "cancelling"),
}
_ONWARD: Final = {
    "validating": "in_progress",
    "in_progress": "finalizing",
    "paused": "in_progress",
    "finalizing": "completed",
    "cancelling": "cancelled",
}
"""The way to a final status."""
_STAMPS: Final = (
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)
_NULLABLE: Final = ("model", "usage", "errors", "output_file_id", "error_file_id", "metadata")
"""Keys that may be absent or null alike: flipping between the two is no change to a model."""
_CONVERTER: Final = make_converter()


@attrs.frozen
class Fault:
    """One failing answer: its status (None: the connection drops) and headers, and whether
    the retry policy calls it transient; `hint` is its Retry-After in seconds."""

    status: int | None
    transient: bool
    headers: Mapping[str, str] = attrs.field(factory=dict)
    hint: float | None = None


FAULTS: Final = (
    Fault(503, transient=True),
    Fault(None, transient=True),
    Fault(429, transient=True, headers={"retry-after": "7"}, hint=7.0),
    Fault(429, transient=True, headers={"retry-after": "200"}, hint=200.0),
    Fault(408, transient=True),
    Fault(400, transient=True, headers={"x-should-retry": "true"}),
    Fault(500, transient=True, headers={"retry-after": "45"}, hint=45.0),
    Fault(400, transient=False, headers={"x-should-retry": "false"}),
    Fault(503, transient=False, headers={"x-should-retry": "false"}),
)
"""What the tests inject: transient ones (the watch rests and tries again) and permanent
ones (the watch raises), `x-should-retry` overriding the status either way."""


@attrs.frozen
class Served:
    """One request as the server answered it: a listing (`target` its `after`) or a
    retrieval (`target` the id), with its status (None: dropped) and injected fault."""

    kind: Literal["list", "retrieve"]
    target: str | None
    status: int | None
    fault: Fault | None = None


class Account:
    """Every batch the account ever had, as the API would send it, and what lists it."""

    def __init__(self, noise: int = 0) -> None:
        self.noise = random.Random(noise)
        """Incidental values (sizes, counts, timestamps): the test draws what matters."""
        self.batches: dict[str, dict[str, Any]] = {}
        self.rank: dict[str, float] = {}
        """Each batch's place among the batches of its creation second (lower: listed first)."""
        self.hidden: set[str] = set()
        """Batches the listing stopped showing; retrieving them still answers."""
        self.deleted: set[str] = set()
        """Batches gone for good: not listed, and retrieving them is a 404."""
        self._made = 0

    def create(self, created_at: int, status: str, rank: float) -> str:
        """A new batch created in that second, placed by `rank` among its ties."""
        self._made += 1
        batch = copy.deepcopy(synthetic_batches(1, seed=self._made, newest=created_at)[0])
        batch_id = f"batch_{self._made:04d}"
        total = self.noise.randint(1, 200)
        batch.update(id=batch_id, created_at=created_at, status="validating")
        batch.update(dict.fromkeys(_STAMPS))
        batch["request_counts"] = {"total": total, "completed": 0, "failed": 0}
        self.batches[batch_id] = batch
        self.rank[batch_id] = rank
        for step, moved in enumerate(_path_to(status), start=1):
            self._set_status(batch, moved, step)
        return batch_id

    def order(self) -> list[str]:
        """Every batch ever made, newest first, ties in their current order."""
        return sorted(self.batches, key=lambda i: (-self.batches[i]["created_at"], self.rank[i]))

    def listed(self) -> list[str]:
        """What a listing shows now, in its order."""
        return [i for i in self.order() if self.is_listed(i)]

    def is_listed(self, batch_id: str) -> bool:
        """Whether a listing shows the batch."""
        return batch_id not in self.hidden and batch_id not in self.deleted

    def exists(self, batch_id: str) -> bool:
        """Whether retrieving the batch answers it."""
        return batch_id in self.batches and batch_id not in self.deleted

    def created_at(self, batch_id: str) -> int:
        """The batch's creation second."""
        created: int = self.batches[batch_id]["created_at"]
        return created

    def newest(self) -> int:
        """The newest creation second of any batch (NOW for an empty account)."""
        return max((b["created_at"] for b in self.batches.values()), default=NOW)

    def is_finished(self, batch_id: str) -> bool:
        """Whether the batch is in one of the four final statuses."""
        return self.batches[batch_id]["status"] in FINISHED

    def model(self, batch_id: str) -> aiobatches.Batch:
        """The batch as the client's models read what the server sends now."""
        batch: aiobatches.Batch = _CONVERTER.structure(self.batches[batch_id], aiobatches.Batch)
        return batch

    def shuffle_ties(self, seed: int) -> None:
        """Redraw the order within every creation second."""
        order = random.Random(seed)
        for batch_id in self.rank:
            self.rank[batch_id] = order.random()

    def progress(self, batch_id: str, move: int) -> None:
        """One step of an unfinished batch's life (`move` picks which): a new status, more
        requests done, or nothing at all. A finished batch never changes again."""
        batch = self.batches[batch_id]
        if batch["status"] in FINISHED:
            return
        moves = MOVES[batch["status"]]
        moved = moves[move % len(moves)]
        counts = batch["request_counts"]
        if moved in ("in_progress", "cancelling") and self.noise.random() < 0.7:
            done = counts["completed"] + self.noise.randint(1, 40)
            counts["completed"] = min(counts["total"], done)
            counts["failed"] = min(counts["total"] - counts["completed"], counts["failed"] + 1)
        self._set_status(batch, moved, self.noise.randint(1, 3_600))

    def finish(self, batch_id: str) -> None:
        """Bring an unfinished batch to one of the final statuses."""
        batch = self.batches[batch_id]
        while batch["status"] not in FINISHED:
            moves = MOVES[batch["status"]]
            self.progress(batch_id, moves.index(_ONWARD[batch["status"]]))

    def flip_nulls(self, batch_id: str, key_index: int) -> None:
        """Send a null key as absent or an absent one as null: the same model, new JSON."""
        batch = self.batches[batch_id]
        key = _NULLABLE[key_index % len(_NULLABLE)]
        if key not in batch:
            batch[key] = None
        elif batch[key] is None:
            del batch[key]

    def _set_status(self, batch: dict[str, Any], status: str, offset: int) -> None:
        if status == batch["status"]:
            return
        batch["status"] = status
        stamp = f"{status}_at"
        if stamp in batch:
            batch[stamp] = batch["created_at"] + offset
        if status == "completed":
            counts = batch["request_counts"]
            counts["completed"] = counts["total"] - counts["failed"]


def _path_to(status: str) -> tuple[str, ...]:
    """The statuses a batch goes through from validating to `status`."""
    paths = {
        "validating": (),
        "in_progress": ("in_progress",),
        "paused": ("in_progress", "paused"),
        "finalizing": ("in_progress", "finalizing"),
        "completed": ("in_progress", "finalizing", "completed"),
        "failed": ("failed",),
        "expired": ("in_progress", "expired"),
        "cancelling": ("in_progress", "cancelling"),
        "cancelled": ("in_progress", "cancelling", "cancelled"),
    }
    return paths[status]


class AccountServer(LoopbackServer):
    """Serves an `Account` as `/v1/batches` and `/v1/batches/{id}`, with planned faults.

    Requests are numbered from 0 within each *attempt* (a cycle, or a try of it), which
    the test starts with `next_attempt`; `faults` maps a request number to the fault that
    answers it, and `before_list` maps a list request number (within the attempt) to a
    change of the account made just before that page is read.
    """

    def __init__(self, account: Account) -> None:
        self.account = account
        self.served: list[Served] = []
        """This attempt's requests, in the order answered."""
        self.faults: dict[int, Fault] = {}
        self.before_list: dict[int, Callable[[], None]] = {}
        self.poll_after_ms: int | None = None
        """Sent as `openai-poll-after-ms` on every successful answer of this attempt."""
        self._lists = 0

    def client(self, **kwargs: Any) -> aiobatches.Client:
        """A client of this server; no per-request retries unless asked, so that every
        injected fault reaches the watch, and a request that hangs fails in 10 s, not 60."""
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 10.0)
        return aiobatches.Client(api_key=KEY, base_url=self.url, **kwargs)

    def next_attempt(
        self,
        *,
        faults: Mapping[int, Fault] | None = None,
        before_list: Mapping[int, Callable[[], None]] | None = None,
        poll_after_ms: int | None = None,
    ) -> None:
        """Start numbering requests afresh, with this attempt's faults, changes and hint."""
        self.served = []
        self.faults = dict(faults or {})
        self.before_list = dict(before_list or {})
        self.poll_after_ms = poll_after_ms
        self._lists = 0

    def _fault(self, request: web.Request) -> Fault | None:
        fault = self.faults.pop(len(self.served), None)
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return Fault(401, transient=False)
        return fault

    def _hinted(self, body: object) -> web.Response:
        headers = {}
        if self.poll_after_ms is not None:
            headers["openai-poll-after-ms"] = str(self.poll_after_ms)
        return web.Response(
            body=orjson.dumps(body), content_type="application/json", headers=headers
        )

    async def _list(self, request: web.Request) -> web.Response:
        change = self.before_list.pop(self._lists, None)
        self._lists += 1
        if change is not None:
            change()
        after = request.query.get("after")
        fault = self._fault(request)
        if fault is not None:
            self.served.append(Served("list", after, fault.status, fault))
            return _failure(request, fault)
        limit = int(request.query.get("limit", "20"))
        order = self.account.order()
        if after is not None and after not in self.account.batches:
            self.served.append(Served("list", after, 400))
            return _error(400, f"No batch found with id '{after}'.", "after")
        start = 0 if after is None else order.index(after) + 1
        shown = [i for i in order[start:] if self.account.is_listed(i)]
        window = [self.account.batches[i] for i in shown[:limit]]
        self.served.append(Served("list", after, 200))
        return self._hinted(
            {
                "object": "list",
                "data": window,
                "first_id": window[0]["id"] if window else None,
                "last_id": window[-1]["id"] if window else None,
                "has_more": len(shown) > limit,
            }
        )

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        fault = self._fault(request)
        if fault is not None:
            self.served.append(Served("retrieve", batch_id, fault.status, fault))
            return _failure(request, fault)
        if not self.account.exists(batch_id):
            self.served.append(Served("retrieve", batch_id, 404))
            return _error(404, f"No batch found with id '{batch_id}'.", None)
        self.served.append(Served("retrieve", batch_id, 200))
        return self._hinted(self.account.batches[batch_id])


def _error(status: int, message: str, param: str | None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return web.json_response({"error": error}, status=status)


def _failure(request: web.Request, fault: Fault) -> web.Response:
    if fault.status is None:
        if request.transport is not None:
            request.transport.close()
        return web.Response()
    error = {"message": "Injected fault.", "type": "server_error", "param": None, "code": None}
    return web.json_response({"error": error}, status=fault.status, headers=dict(fault.headers))


@contextlib.contextmanager
def resting_with(hook: Callable[[float], Awaitable[None]]) -> Iterator[None]:
    """Within the block, each of aiobatches' sleeps runs `hook(delay)` instead of waiting."""
    token = _retry._sleeper.set(hook)
    try:
        yield
    finally:
        _retry._sleeper.reset(token)


@contextlib.contextmanager
def warnings_logged() -> Iterator[list[logging.LogRecord]]:
    """The WARNING (and worse) records of the `aiobatches` logger within the block."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("aiobatches")
    handler = Collect(logging.WARNING)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # the per-request DEBUG records would only cost time
    try:
        yield records
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)
