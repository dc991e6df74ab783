"""A real aiohttp.web server with the semantics of `GET /v1/batches`, for tests and demos.

`FakeBatchesServer` serves seeded synthetic batches newest first, validates
`limit` and `after` with OpenAI-shaped 400 errors, serves `GET /v1/batches/{id}`,
checks Bearer auth when a key is configured, counts every request and records the
latest, and misbehaves on demand: a `FaultPlan` picks per list request (by index or
seeded chance) a `Fault` to serve. On a clock (`ManualClock` for tests,
`AcceleratedClock` for demos) its batches live: they move through their statuses,
new ones arrive, and old ones vanish, so it can run for hours in bounded memory.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import itertools
import json
import math
import random
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import orjson
from aiohttp import web
from attrs import field, frozen

from . import _body, _living, _synthetic
from ._living import AcceleratedClock, ManualClock
from ._retry import recorded_sleeps
from ._synthetic import synthetic_batches

__all__ = [
    "AcceleratedClock",
    "FakeBatchesServer",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "ManualClock",
    "RecordedRequest",
    "recorded_sleeps",
    "synthetic_batches",
]

_Response = TypeVar("_Response", bound=web.StreamResponse)
_DEFAULT_LIMIT: Final = 20
_RECORDED: Final = 10_000
"""How many of the latest requests a server keeps by default: enough for any test's
reading, and a bound for a server left running."""
_MAX_LIMIT: Final = 100
_AZURE_API_VERSION: Final = "2024-10-21"
"""The latest GA version of Azure OpenAI's data-plane API with batches."""
_AZURE_VERSIONED: Final = "/openai/batches"
_AZURE_V1: Final = "/openai/v1/batches"
_AZURE_CODES: Final = {400: "BadRequest", 401: "401", 404: "NotFound"}
"""The `code` of Azure's errors by status; other statuses send the status itself."""
_AZURE_DENIED: Final = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)


@frozen
class RecordedRequest:
    """One request the fake server received."""

    method: str
    """The HTTP method, e.g. `"GET"`."""
    path: str
    """The URL path, e.g. `"/v1/batches"`."""
    query: Mapping[str, str]
    """The query parameters, e.g. `{"limit": "20", "after": "batch_abc123"}`."""
    headers: Mapping[str, str]
    """The request headers, `Authorization` included."""


class FaultKind(enum.Enum):
    """The ways the fake server can misbehave."""

    STATUS = "status"
    """Answer with `status`, `headers` and `body` (an OpenAI-shaped error by default)."""
    DROP = "drop"
    """Close the connection without answering."""
    TRUNCATE = "truncate"
    """Announce the full page's length, send half of it, and close."""
    STALL = "stall"
    """Wait `seconds` before answering normally."""
    CYCLE = "cycle"
    """Answer with the first page again, whatever the cursor (a pagination loop)."""
    EMPTY_HAS_MORE = "empty_has_more"
    """Answer an empty page that claims `has_more: true`."""


@frozen
class Fault:
    """One misbehaviour for one request; build it with the class methods."""

    kind: FaultKind
    """How the request goes wrong."""
    status: int = 500
    """The status to answer with, for `FaultKind.STATUS`."""
    headers: Mapping[str, str] = field(factory=dict)
    """Headers to add to the answer, for `FaultKind.STATUS`."""
    body: bytes | None = None
    """The body to answer with, for `FaultKind.STATUS`; None for an OpenAI-shaped error."""
    content_type: str = "application/json"
    """The answer's `Content-Type`, for `FaultKind.STATUS`."""
    seconds: float = 0.0
    """How long to hold the answer back, for `FaultKind.STALL`."""

    @classmethod
    def respond(
        cls,
        status: int,
        headers: Mapping[str, str] | None = None,
        *,
        body: bytes | str | None = None,
        content_type: str = "application/json",
    ) -> Fault:
        """Answer with this status (and e.g. `{"retry-after": "1"}`); 200 serves `body` as is."""
        raw = body.encode() if isinstance(body, str) else body
        return cls(FaultKind.STATUS, status, dict(headers or {}), raw, content_type=content_type)

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection before replying."""
        return cls(FaultKind.DROP)

    @classmethod
    def truncate(cls) -> Fault:
        """Cut the page's body short after its headers promised all of it."""
        return cls(FaultKind.TRUNCATE)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Hold the answer back for `seconds`."""
        return cls(FaultKind.STALL, seconds=seconds)

    @classmethod
    def cycle(cls) -> Fault:
        """Serve the first page again, so the cursor comes back to one seen before."""
        return cls(FaultKind.CYCLE)

    @classmethod
    def empty_has_more(cls) -> Fault:
        """Serve an empty page that still claims more."""
        return cls(FaultKind.EMPTY_HAS_MORE)


@frozen
class FaultPlan:
    """Which requests to the list endpoint misbehave, and how.

    Attributes:
        at: faults by the 0-based index of the page request (retries count too).
        rate: chance that any other request draws a fault from `pool`.
        pool: the faults drawn by chance.
        seed: seed of those draws, so a plan replays identically.
    """

    at: Mapping[int, Fault] = field(factory=dict)
    rate: float = 0.0
    pool: Sequence[Fault] = ()
    seed: int = 0


class _FaultPicker:
    """Replays a plan: the fault for each successive request, if any."""

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._random = random.Random(plan.seed)  # noqa: S311 - reproducible test faults

    def pick(self, index: int) -> Fault | None:
        plan = self._plan
        if index in plan.at:
            return plan.at[index]
        if plan.pool and plan.rate and self._random.random() < plan.rate:
            return self._random.choice(plan.pool)
        return None


class FakeBatchesServer:
    """The batches endpoints on 127.0.0.1 (port 0 by default); an async context manager.

    `GET /v1/batches` lists newest first; `GET /v1/batches/{id}` retrieves one batch
    (an OpenAI-shaped 404 for an unknown id). Both check auth and are counted, and the
    latest `record_requests` requests are recorded; faults apply to list requests only
    (`page_request_count` is the index a `FaultPlan` goes by), never to retrievals.

    With `azure=True` it is an Azure OpenAI endpoint (`url` is the endpoint) serving both
    of Azure's API styles at once, each with list and retrieve:

    - `/openai/batches`, which requires `api-version` to be `azure_api_version`, and
      answers in the shapes of Azure's published REST spec (2024-10-21): a list of only
      `object` and `data` (no `first_id`, `last_id` or `has_more`), and a failed batch's
      `errors.data` as one object, its first error, whose `line` is a string of digits.
    - `/openai/v1/batches`, the v1 API, which refuses any `api-version` and answers in
      OpenAI's shapes.

    Both take the key as `api-key` or Bearer, and answer errors in Azure's shape,
    `{"error": {"code": ..., "message": ...}}` with no `type` or `param`: a refused key
    (401, code `"401"`), an unknown batch (404, `"NotFound"`), a bad `api-version`, limit
    or cursor (400, `"BadRequest"`), and an injected status fault (its status as code).

    Without a clock the batches never change. With one they live: each follows a seeded
    timeline (validating, in progress with growing request counts, finalizing, completed;
    or failed, expired or cancelled), and what a batch looks like is a function of the
    clock's time alone; a finished batch never changes again. The `count` initial batches
    were created before the clock's start, most of them finished, those of the last day
    possibly not.

    A living server has a retention window: a synthetic batch created more than
    `retention` clock seconds ago is no longer served (it vanishes from the list, its
    retrieval is a 404 and its id no longer a valid `after`), as old batches can vanish
    from real servers; batches given as `batches` never vanish. So memory stays bounded
    however long the server runs, and a clock jump of a month or a year draws only the
    arrivals still within the window, never every arrival of the span it jumps.

    Args:
        batches: the batches to serve, newest first; by default `count` synthetic ones.
            With a clock they are served as given, beneath the arrivals.
        count: how many synthetic batches to generate when `batches` is not given.
        seed: seed of the synthetic batches (and of their timelines and arrivals).
        api_key: when set, requests must carry `Authorization: Bearer <api_key>`.
        latency: seconds each list or retrieve request waits before it is answered.
        faults: a `FaultPlan`, or a mapping of page-request index to `Fault`.
        azure: serve Azure OpenAI's two API styles instead of OpenAI's (see above).
        azure_api_version: with `azure`, the `api-version` that `/openai/batches`
            accepts (default `"2024-10-21"`).
        clock: a `ManualClock` or `AcceleratedClock` to make the batches live.
        arrival_every: with a clock, new batches appear on top at seeded times about
            this many clock seconds apart (0: none).
        poll_after_ms: when set, list and retrieve answers carry `openai-poll-after-ms`.
        retention: with a clock, how many clock seconds a synthetic batch is served after
            its creation (default 7 days); the initial batches created earlier are left out.
        record_requests: how many of the latest requests `requests` keeps (default
            10,000; 0 records none, for a server left running). The counters count all.
    """

    def __init__(
        self,
        batches: Sequence[Mapping[str, Any]] | None = None,
        *,
        count: int = 250,
        seed: int = 0,
        api_key: str | None = None,
        latency: float = 0.0,
        faults: FaultPlan | Mapping[int, Fault] | None = None,
        azure: bool = False,
        azure_api_version: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: ManualClock | AcceleratedClock | None = None,
        arrival_every: float = 0.0,
        poll_after_ms: int | None = None,
        retention: float | None = None,
        record_requests: int = _RECORDED,
    ) -> None:
        if _living.finite_seconds("arrival_every", arrival_every) < 0:
            raise ValueError(f"arrival_every must be finite seconds >= 0, got {arrival_every!r}")
        if arrival_every and clock is None:
            raise ValueError("arrival_every needs a clock to arrive by")
        if retention is not None:
            if _living.finite_seconds("retention", retention) <= 0:
                raise ValueError(f"retention must be finite seconds > 0, got {retention!r}")
            if clock is None:
                raise ValueError("retention needs a clock to age batches by")
        if record_requests < 0:
            raise ValueError(f"record_requests must be >= 0, got {record_requests!r}")
        if azure_api_version is not None and not azure:
            raise ValueError("azure_api_version applies to an Azure server: pass azure=True too")
        # Without a clock, given batches read back as the very list given; synthetic ones
        # are held only encoded, and decoded once, when first asked for.
        self._static = None if batches is None or clock is not None else list(batches)
        self._population = _populate(
            batches, count=count, seed=seed, clock=clock, every=arrival_every, retention=retention
        )
        self.clock = clock
        """The clock that makes the batches live; None for batches that never change."""
        self.poll_after_ms = poll_after_ms
        """Sent as `openai-poll-after-ms` on list and retrieve answers when not None."""
        self.api_key = api_key
        """The key requests must carry (as a bearer token, or Azure's `api-key`); None: any."""
        self.latency = latency
        """Seconds each list or retrieve request waits before it is answered."""
        self.faults = faults
        self.azure = azure
        """Whether the server speaks Azure OpenAI's two API styles instead of OpenAI's."""
        self.azure_api_version = (azure_api_version or _AZURE_API_VERSION) if azure else None
        """The `api-version` that `/openai/batches` accepts; None unless `azure`."""
        self._recorded: collections.deque[RecordedRequest] = collections.deque(
            maxlen=record_requests
        )
        self.request_count = 0
        """Every request received, recorded or not, including those refused or not found."""
        self.page_request_count = 0
        """The requests made to the list endpoint: the next one's index in a `FaultPlan`."""
        self.retrieve_request_count = 0
        """The requests made to retrieve one batch (`GET .../batches/{id}`)."""
        self.peak_connections = 0
        """The most client connections open at once, as seen at each request."""
        self._connections: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self._host = host
        self._port = port
        self._request_ids = itertools.count(1)
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL to hand to a client: ending in `/v1`, or the endpoint in Azure mode."""
        if self._url is None:
            raise RuntimeError("the server is not running; use `async with` or `await start()`")
        return self._url

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force; assign a new one (or a mapping) at any time."""
        return self._faults

    @faults.setter
    def faults(self, faults: FaultPlan | Mapping[int, Fault] | None) -> None:
        if not isinstance(faults, FaultPlan):
            faults = FaultPlan(at=dict(faults or {}))
        self._faults = faults
        self._picker = _FaultPicker(faults)

    @property
    def open_connections(self) -> int:
        """Client connections open now (that made a request): a closed client leaves none."""
        return sum(1 for seen in self._connections if not seen.is_closing())

    @property
    def batches(self) -> list[Mapping[str, Any]]:
        """Every batch served, newest first: as given without a clock, else as they are now."""
        if self.clock is not None:
            return self._population.snapshot()
        if self._static is None:
            self._static = self._population.snapshot()
        return self._static

    @property
    def requests(self) -> list[RecordedRequest]:
        """The latest requests received (up to `record_requests`), in order, including
        those refused or not found."""
        return list(self._recorded)

    @property
    def page_requests(self) -> list[RecordedRequest]:
        """The recorded requests made to the list endpoint, in order."""
        return [request for request in self._recorded if self._is_page(request.path)]

    @property
    def retrieve_requests(self) -> list[RecordedRequest]:
        """The recorded requests made to retrieve one batch (`GET .../batches/{id}`), in order."""
        return [request for request in self._recorded if self._is_retrieve(request.path)]

    def _is_page(self, path: str) -> bool:
        """Whether a request to `path` counts as a page request (whatever its method)."""
        return path in self._list_paths

    def _is_retrieve(self, path: str) -> bool:
        """Whether a request to `path` counts as a retrieval: any path below the list's."""
        return path.startswith(tuple(listed + "/" for listed in self._list_paths))

    @property
    def _list_paths(self) -> tuple[str, ...]:
        return (_AZURE_VERSIONED, _AZURE_V1) if self.azure else ("/v1/batches",)

    async def start(self) -> None:
        """Bind the port and start serving."""
        app = web.Application(middlewares=[self._in_flight])
        for path in self._list_paths:
            app.router.add_get(path, self._list_batches)
            app.router.add_get(path + "/{batch_id}", self._retrieve_batch)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        app.on_shutdown.append(self._cancel_in_flight)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://{host}:{port}" + ("" if self.azure else "/v1")

    async def close(self) -> None:
        """Stop serving and release the port; idempotent.

        Requests still being answered (a stall, a latency) are cancelled, and their
        connections dropped, so closing never waits for them.
        """
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _in_flight(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Run `handler`, known as in flight until it returns, so `close()` can cancel it."""
        task = asyncio.current_task()
        assert task is not None  # aiohttp runs every handler in a task of its own
        self._handlers.add(task)
        try:
            return await handler(request)
        finally:
            self._handlers.discard(task)

    async def _cancel_in_flight(self, _: web.Application) -> None:
        """Cancel every request still being answered, and wait until each has stopped."""
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _list_batches(self, request: web.Request) -> web.StreamResponse:
        fault = self._picker.pick(self.page_request_count)
        self._record(request)
        refusal = self._check_auth(request) or self._check_api_version(request)
        if refusal is not None:
            return refusal
        limit = _parse_limit(request.query.get("limit"))
        if isinstance(limit, _Refusal):
            return self._error(400, limit.message, limit.param, limit.code)
        after = request.query.get("after")
        start = None
        if after is not None:
            start = self._population.place(after)
            if start is None:
                return self._error(
                    400, f"Invalid 'after': no batch with id '{after}' was found.", "after"
                )
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            return await self._misbehave(fault, request, start, limit)
        return self._answer(self._page(request, start, limit))

    async def _retrieve_batch(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        refusal = self._check_auth(request) or self._check_api_version(request)
        if refusal is not None:
            return refusal
        batch_id = request.match_info["batch_id"]
        if self._population.place(batch_id) is None:
            return self._no_batch(batch_id)
        if self.latency:
            await asyncio.sleep(self.latency)
        body = self._population.get(batch_id)
        if body is None:  # it grew older than the retention while the answer waited
            return self._no_batch(batch_id)
        if _published_by_azure(request):
            body = _body.dumps(_synthetic.as_azure_publishes(json.loads(body)))  # exact integers
        return self._answer(body)

    def _no_batch(self, batch_id: str) -> web.Response:
        return self._error(404, f"No batch found with id '{batch_id}'.")

    def _page(self, request: web.Request, start: int | None, limit: int) -> bytes:
        """The list body of `limit` batches below place `start`, shaped as the path answers."""
        body = self._population.page(start, limit)
        if not _published_by_azure(request):
            return body
        data = [_synthetic.as_azure_publishes(batch) for batch in json.loads(body)["data"]]
        return _body.dumps({"object": "list", "data": data})

    def _answer(self, body: bytes) -> web.Response:
        """A successful answer, with the polling hint when one is set."""
        response = web.Response(body=body, content_type="application/json")
        if self.poll_after_ms is not None:
            response.headers["openai-poll-after-ms"] = str(self.poll_after_ms)
        return self._with_request_id(response)

    async def _misbehave(
        self, fault: Fault, request: web.Request, start: int | None, limit: int
    ) -> web.StreamResponse:
        """Serve `fault` instead of the page below place `start` (None: the first page)."""
        match fault.kind:
            case FaultKind.STATUS:
                body = fault.body
                if body is None:
                    body = self._error_body(
                        fault.status, f"Injected fault: {fault.status}.", code="server_error"
                    )
                response = web.Response(status=fault.status, body=body, headers=fault.headers)
                response.content_type = fault.content_type
                return self._with_request_id(response)
            case FaultKind.DROP:
                _close(request)
                return web.Response()
            case FaultKind.TRUNCATE:
                body = self._page(request, start, limit)
                truncated = web.StreamResponse()
                truncated.content_type = "application/json"
                truncated.content_length = len(body)
                await self._with_request_id(truncated).prepare(request)
                await truncated.write(body[: len(body) // 2])
                _close(request)
                return truncated
            case FaultKind.STALL:
                await asyncio.sleep(fault.seconds)
                page = self._page(request, start, limit)
            case FaultKind.CYCLE:
                page = self._page(request, None, limit)
            case FaultKind.EMPTY_HAS_MORE:
                page = b'{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":true}'
        return self._with_request_id(web.Response(body=page, content_type="application/json"))

    def _check_api_version(self, request: web.Request) -> web.Response | None:
        """The 400 for an `api-version` the path does not take: the versioned path takes
        only its own, the v1 path none at all."""
        if not self.azure:
            return None
        version = request.query.get("api-version")
        if _published_by_azure(request):
            if version == self.azure_api_version:
                return None
            return self._error(400, "API version not supported")
        if version is None:
            return None
        return self._error(400, "api-version query parameter is not allowed when using /v1 path")

    def _record(self, request: web.Request) -> None:
        transport = request.transport
        if transport is not None:
            self._connections.add(transport)
            self.peak_connections = max(self.peak_connections, self.open_connections)
        self.request_count += 1
        if self._is_page(request.path):
            self.page_request_count += 1
        elif self._is_retrieve(request.path):
            self.retrieve_request_count += 1
        if self._recorded.maxlen:
            self._recorded.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=dict(request.headers),
                )
            )

    def _check_auth(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        header = request.headers.get("Authorization")
        if self.azure:
            if request.headers.get("api-key") == self.api_key or header == f"Bearer {self.api_key}":
                return None
            return self._error(401, _AZURE_DENIED)
        if header is None:
            return self._error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                code=None,
            )
        if header != f"Bearer {self.api_key}":
            given = header.removeprefix("Bearer ")
            return self._error(
                401,
                f"Incorrect API key provided: {_mask(given)}. "
                "You can find your API key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        return None

    async def _not_found(self, request: web.Request) -> web.Response:
        self._record(request)
        if self.azure:
            return self._error(404, "Resource not found")
        return self._error(404, f"Invalid URL ({request.method} {request.path})")

    def _error(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> web.Response:
        body = self._error_body(status, message, param, code)
        response = web.Response(status=status, body=body, content_type="application/json")
        return self._with_request_id(response)

    def _error_body(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> bytes:
        """An error body shaped as OpenAI's, or in Azure mode as Azure's (with its own codes)."""
        if self.azure:
            error = {"code": _AZURE_CODES.get(status, str(status)), "message": message}
            return orjson.dumps({"error": error})
        kind = "server_error" if code == "server_error" else "invalid_request_error"
        return orjson.dumps(
            {"error": {"message": message, "type": kind, "param": param, "code": code}}
        )

    def _with_request_id(self, response: _Response) -> _Response:
        response.headers["x-request-id"] = f"req_{next(self._request_ids):032x}"
        return response


def _populate(
    batches: Sequence[Mapping[str, Any]] | None,
    *,
    count: int,
    seed: int,
    clock: ManualClock | AcceleratedClock | None,
    every: float,
    retention: float | None,
) -> _living.LivingBatches:
    """The batches a server holds: given or synthetic, static or living on `clock`."""
    if clock is None:
        given = _synthetic.draw_batches(count, seed=seed) if batches is None else batches
        return _living.LivingBatches(given, now=_never)
    # From the clock's start, not from now: the same batches however late the server is
    # made, on every run of a demo.
    start = math.floor(clock.start)
    return _living.LivingBatches(
        () if batches is None else batches,
        _living.history(count, seed=seed, before=start) if batches is None else (),
        now=clock.now,
        arrivals=_living.Arrivals(seed=seed, start=start, every=every) if every else None,
        retention=_living.RETENTION if retention is None else retention,
    )


def _never() -> float:
    """The time of a server without a clock: its batches look the same at every time."""
    return 0.0


@frozen
class _Refusal:
    """What a 400 answer says about a bad request parameter."""

    message: str
    param: str
    code: str


def _parse_limit(raw: str | None) -> int | _Refusal:
    """The page size, or what the real API's 400 says about a bad one."""
    if raw is None:
        return _DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        return _Refusal(
            f"Invalid 'limit': expected an integer, but got '{raw}' instead.",
            "limit",
            "invalid_type",
        )
    if limit < 1:
        return _Refusal(
            f"Invalid 'limit': integer below minimum value. Expected a value >= 1, "
            f"but got {limit} instead.",
            "limit",
            "integer_below_min_value",
        )
    if limit > _MAX_LIMIT:
        return _Refusal(
            f"Invalid 'limit': integer above maximum value. Expected a value <= {_MAX_LIMIT}, "
            f"but got {limit} instead.",
            "limit",
            "integer_above_max_value",
        )
    return limit


def _published_by_azure(request: web.Request) -> bool:
    """Whether the request is to Azure's versioned path, which answers in its spec's shapes."""
    return request.path.startswith(_AZURE_VERSIONED)


def _close(request: web.Request) -> None:
    """Drop the client's connection at once."""
    if request.transport is not None:
        request.transport.close()


def _mask(key: str) -> str:
    """Show a wrong key the way OpenAI does: a few characters at each end."""
    return f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
