"""A model account for the watch's tests, OpenAI's or Anthropic's, served over real HTTP
on 127.0.0.1 in its API's shape.

Its batches fall in few creation seconds (OpenAI's whole seconds; from Anthropic, many
microseconds of one second, and ties at one microsecond) and are listed newest first,
in any order within a moment (an order the test may redraw between cycles, stable
within one listing); they progress, vanish from the listing (still retrievable, or
gone for good) and come back; and any request can be made to fail as real servers
fail. Pagination is keyset-like: the cursor names a place in the order, even the place
of a batch the listing no longer shows, so a cursor stays good while pages shift.
Each batch is held once, as OpenAI writes it; Anthropic's `message_batch` is derived
from that record as it is served.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final, Literal, Self

import attrs
import orjson
from _helpers import LoopbackServer
from aiohttp import web

import aiobatches
from aiobatches import _retry
from aiobatches._client import _Client
from aiobatches._converter import make_converter
from aiobatches.testing import synthetic_batches

Api = Literal["openai", "anthropic"]
AnyBatch = aiobatches.Batch | aiobatches.MessageBatch
"""A batch as either API's client reads it."""
KEY: Final = "sk-account-0123456789"
NOW: Final = 1_763_000_000
MICRO: Final = 1_000_000
"""Microseconds in a second: creation moments are held as whole microseconds."""
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
_PROCESSING: Final[Mapping[str, str]] = {
    "validating": "in_progress",
    "in_progress": "in_progress",
    "finalizing": "in_progress",
    "cancelling": "canceling",
    "paused": "paused",  # a state Anthropic might add later: unfinished, a plain str
}
"""Anthropic's `processing_status` of each unfinished status; a finished one has `ended`."""
_ENDED_AT: Final = ("completed_at", "failed_at", "expired_at", "cancelled_at")
_LEFT_OVER: Final[Mapping[str, str]] = {"expired": "expired", "cancelled": "canceled"}
"""Where the requests never done go when a batch ends so (elsewhere: `errored`)."""
_RESULTS_URL: Final = "https://api.anthropic.com/v1/messages/batches/{id}/results"
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_DAY: Final = 86_400


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
    """Every batch the account ever had, as its API would send it, and what lists it."""

    def __init__(self, noise: int = 0, *, api: Api = "openai") -> None:
        self.api: Api = api
        """Whose account this is: what its ids and creation moments look like, and how
        its server writes its batches."""
        self.noise = random.Random(noise)
        """Incidental values (sizes, counts, timestamps): the test draws what matters."""
        self.batches: dict[str, dict[str, Any]] = {}
        """Each batch as OpenAI writes it (Anthropic's view is derived from it)."""
        self.micros: dict[str, int] = {}
        """Each batch's microsecond within its creation second (0 for OpenAI's)."""
        self.rank: dict[str, float] = {}
        """Each batch's place among the batches of its creation moment (lower: listed first)."""
        self.hidden: set[str] = set()
        """Batches the listing stopped showing; retrieving them still answers."""
        self.deleted: set[str] = set()
        """Batches gone for good: not listed, and retrieving them is a 404."""
        self._made = 0

    @property
    def prefix(self) -> str:
        """What the account's batch ids begin with."""
        return "msgbatch_" if self.api == "anthropic" else "batch_"

    def create(self, created_at: int, status: str, rank: float, micro: int = 0) -> str:
        """A new batch created in that second (at `micro` microseconds into it: Anthropic's
        only), placed by `rank` among its ties."""
        if (micro and self.api != "anthropic") or not 0 <= micro < MICRO:
            raise ValueError(f"no {self.api} batch is created {micro} microseconds into a second")
        self._made += 1
        batch = copy.deepcopy(synthetic_batches(1, seed=self._made, newest=created_at)[0])
        batch_id = f"{self.prefix}{self._made:04d}"
        total = self.noise.randint(1, 200)
        batch.update(id=batch_id, created_at=created_at, status="validating")
        batch.update(dict.fromkeys(_STAMPS))
        batch["request_counts"] = {"total": total, "completed": 0, "failed": 0}
        self.batches[batch_id] = batch
        self.micros[batch_id] = micro
        self.rank[batch_id] = rank
        for step, moved in enumerate(_path_to(status), start=1):
            self._set_status(batch, moved, step)
        return batch_id

    def create_later(self, later: int, status: str, rank: float, spread: float = 0.0) -> str:
        """A batch made now: at the newest moment, among its ties (`later` 0), or later.
        OpenAI's lands `later` seconds after the newest second; Anthropic's 1 lands less
        than a second after the newest moment, in its second or the next, and 2 in the
        second after next, `spread` (0..1) placing it."""
        newest = max(map(self.moment_us, self.batches), default=NOW * MICRO)
        if self.api == "openai":
            return self.create(newest // MICRO + later, status, rank)
        if later == 0:
            created = newest
        elif later == 1:
            created = newest + 1 + int(spread * (MICRO - 1))
        else:
            created = (newest // MICRO + later) * MICRO + int(spread * MICRO)
        return self.create(created // MICRO, status, rank, created % MICRO)

    def order(self) -> list[str]:
        """Every batch ever made, newest first, ties in their current order."""
        return sorted(self.batches, key=lambda i: (-self.moment_us(i), self.rank[i]))

    def listed(self) -> list[str]:
        """What a listing shows now, in its order."""
        return [i for i in self.order() if self.is_listed(i)]

    def is_listed(self, batch_id: str) -> bool:
        """Whether a listing shows the batch."""
        return batch_id not in self.hidden and batch_id not in self.deleted

    def exists(self, batch_id: str) -> bool:
        """Whether retrieving the batch answers it."""
        return batch_id in self.batches and batch_id not in self.deleted

    def moment_us(self, batch_id: str) -> int:
        """The batch's creation moment in whole microseconds since the epoch."""
        return self.second(batch_id) * MICRO + self.micros[batch_id]

    def second(self, batch_id: str) -> int:
        """The batch's creation second."""
        second: int = self.batches[batch_id]["created_at"]
        return second

    def moment(self, batch_id: str) -> float:
        """The batch's creation moment in Unix seconds, as its API tells it (whole seconds
        from OpenAI, microseconds from Anthropic), rounded once as `datetime.timestamp`
        rounds it: the number the watch compares."""
        return self.moment_us(batch_id) / MICRO

    def is_finished(self, batch_id: str) -> bool:
        """Whether the batch is in one of the four final statuses."""
        return self.batches[batch_id]["status"] in FINISHED

    def item(self, batch_id: str) -> dict[str, Any]:
        """The batch as its API sends it now: OpenAI's record, or Anthropic's derived one."""
        if self.api == "anthropic":
            return message_batch(self.batches[batch_id], self.micros[batch_id])
        return self.batches[batch_id]

    def model(self, batch_id: str) -> AnyBatch:
        """The batch as the client's models read what the server sends now."""
        if self.api == "anthropic":
            message: aiobatches.MessageBatch = _CONVERTER.structure(
                self.item(batch_id), aiobatches.MessageBatch
            )
            return message
        batch: aiobatches.Batch = _CONVERTER.structure(self.item(batch_id), aiobatches.Batch)
        return batch

    def shuffle_ties(self, seed: int) -> None:
        """Redraw the order within every creation moment."""
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


def status_of(batch: AnyBatch) -> str:
    """A batch's status as its API names it: OpenAI's `status`, Anthropic's `processing_status`."""
    status = batch.status if isinstance(batch, aiobatches.Batch) else batch.processing_status
    return str(status)


def message_batch(batch: Mapping[str, Any], micro: int) -> dict[str, Any]:
    """An OpenAI-shaped batch record as Anthropic writes the message batch: three states
    (a later one passed on), every request `processing` until the batch ends, and times
    RFC 3339 at `micro` microseconds into their second."""
    status = batch["status"]
    processing = _PROCESSING.get(status, "ended")
    ended = processing == "ended"
    ended_at = next((batch[stamp] for stamp in _ENDED_AT if batch[stamp] is not None), None)
    counts = batch["request_counts"]
    split = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
    if not ended:
        split["processing"] = counts["total"]
    elif status == "failed":  # refused before any request ran
        split["errored"] = counts["total"]
    else:
        split.update(succeeded=counts["completed"], errored=counts["failed"])
        left = counts["total"] - counts["completed"] - counts["failed"]
        split[_LEFT_OVER.get(status, "errored")] += left
    return {
        "id": batch["id"],
        "type": "message_batch",
        "processing_status": processing,
        "request_counts": split,
        "ended_at": _rfc3339(ended_at, micro) if ended else None,
        "created_at": _rfc3339(batch["created_at"], micro),
        "expires_at": _rfc3339(batch["created_at"] + _DAY, micro),
        "archived_at": None,
        "cancel_initiated_at": _rfc3339(batch["cancelling_at"], micro),
        "results_url": _RESULTS_URL.format(id=batch["id"]) if ended else None,
    }


def _rfc3339(seconds: int | None, micro: int) -> str | None:
    """A Unix second, `micro` microseconds into it, as Anthropic writes a time."""
    if seconds is None:
        return None
    moment = _EPOCH + datetime.timedelta(seconds=seconds, microseconds=micro)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


@attrs.frozen
class Shape:
    """How one API serves an account: where, with which cursor and page sizes, whom it
    lets in, how it writes an error, and whether it sends a poll hint."""

    path: str
    """The listing's path; a batch is retrieved below it."""
    cursor: str
    """The query parameter that continues a listing after an id."""
    max_limit: int
    authorized: Callable[[Mapping[str, str]], bool]
    error: Callable[[int, str, str | None], dict[str, Any]]
    """The body of an error: its status, message and the parameter at fault."""
    hints: bool
    """Whether the API sends `openai-poll-after-ms` (Anthropic never does)."""


def _openai_error(status: int, message: str, param: str | None) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def _anthropic_error(status: int, message: str, _param: str | None) -> dict[str, Any]:
    kinds = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_error"}
    kind = kinds.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


SHAPES: Final[Mapping[Api, Shape]] = {
    "openai": Shape(
        "/v1/batches",
        "after",
        max_limit=100,
        authorized=lambda headers: headers.get("Authorization") == f"Bearer {KEY}",
        error=_openai_error,
        hints=True,
    ),
    "anthropic": Shape(
        "/v1/messages/batches",
        "after_id",
        max_limit=1000,
        authorized=lambda headers: (
            headers.get("x-api-key") == KEY and "anthropic-version" in headers
        ),
        error=_anthropic_error,
        hints=False,
    ),
}


class AccountServer(LoopbackServer):
    """Serves an `Account` as its API does: OpenAI's `/v1/batches` and `/v1/batches/{id}`,
    or Anthropic's `/v1/messages/batches` and `/v1/messages/batches/{id}`, with planned
    faults.

    Requests are numbered from 0 within each *attempt* (a cycle, or a try of it), which
    the test starts with `next_attempt`; `faults` maps a request number to the fault that
    answers it, and `before_list` maps a list request number (within the attempt) to a
    change of the account made just before that page is read.
    """

    def __init__(self, account: Account) -> None:
        self.account = account
        self.shape = SHAPES[account.api]
        self.root = ""
        """The server's address, without `/v1` (`url` is its `/v1` base)."""
        self.served: list[Served] = []
        """This attempt's requests, in the order answered."""
        self.faults: dict[int, Fault] = {}
        self.before_list: dict[int, Callable[[], None]] = {}
        self.poll_after_ms: int | None = None
        """Sent as `openai-poll-after-ms` on every successful answer of this attempt, by an
        API that sends such hints (else always None)."""
        self._lists = 0

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get(self.shape.path, self._list)
        app.router.add_get(self.shape.path + "/{batch_id}", self._retrieve)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.root = f"http://{host}:{port}"
        self.url = f"{self.root}/v1"
        return self

    def client(self, **kwargs: Any) -> _Client[Any]:
        """A client of this server, of the account's API (`aiobatches.Client`, or
        `aiobatches.AnthropicClient`); no per-request retries unless asked, so that every
        injected fault reaches the watch, and a request that hangs fails in 10 s, not 60."""
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 10.0)
        if self.account.api == "anthropic":
            return aiobatches.AnthropicClient(api_key=KEY, base_url=self.root, **kwargs)
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
        self.poll_after_ms = poll_after_ms if self.shape.hints else None
        self._lists = 0

    def _fault(self, request: web.Request) -> Fault | None:
        fault = self.faults.pop(len(self.served), None)
        if not self.shape.authorized(request.headers):
            return Fault(401, transient=False)
        return fault

    def _hinted(self, body: object) -> web.Response:
        headers = {}
        if self.poll_after_ms is not None:
            headers["openai-poll-after-ms"] = str(self.poll_after_ms)
        return web.Response(
            body=orjson.dumps(body), content_type="application/json", headers=headers
        )

    def _error(self, status: int, message: str, param: str | None) -> web.Response:
        return web.json_response(self.shape.error(status, message, param), status=status)

    def _failure(self, request: web.Request, fault: Fault) -> web.Response:
        if fault.status is None:
            if request.transport is not None:
                request.transport.close()
            return web.Response()
        body = self.shape.error(fault.status, "Injected fault.", None)
        return web.json_response(body, status=fault.status, headers=dict(fault.headers))

    async def _list(self, request: web.Request) -> web.Response:
        change = self.before_list.pop(self._lists, None)
        self._lists += 1
        if change is not None:
            change()
        cursor = self.shape.cursor
        after = request.query.get(cursor)
        fault = self._fault(request)
        if fault is not None:
            self.served.append(Served("list", after, fault.status, fault))
            return self._failure(request, fault)
        limit = int(request.query.get("limit", "20"))
        if not 1 <= limit <= self.shape.max_limit:
            self.served.append(Served("list", after, 400))
            return self._error(400, f"limit: {limit} is not in 1..{self.shape.max_limit}", "limit")
        order = self.account.order()
        if after is not None and after not in self.account.batches:
            self.served.append(Served("list", after, 400))
            return self._error(400, f"No batch found with id '{after}'.", cursor)
        start = 0 if after is None else order.index(after) + 1
        shown = [i for i in order[start:] if self.account.is_listed(i)]
        window = [self.account.item(i) for i in shown[:limit]]
        self.served.append(Served("list", after, 200))
        page = {
            "data": window,
            "first_id": window[0]["id"] if window else None,
            "last_id": window[-1]["id"] if window else None,
            "has_more": len(shown) > limit,
        }
        if self.account.api == "openai":
            page = {"object": "list", **page}
        return self._hinted(page)

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        fault = self._fault(request)
        if fault is not None:
            self.served.append(Served("retrieve", batch_id, fault.status, fault))
            return self._failure(request, fault)
        if not self.account.exists(batch_id):
            self.served.append(Served("retrieve", batch_id, 404))
            return self._error(404, f"No batch found with id '{batch_id}'.", None)
        self.served.append(Served("retrieve", batch_id, 200))
        return self._hinted(self.account.item(batch_id))


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
