"""The fake server itself: its settings, its lifecycle, and what a test can read of it.

`FakeBatchesServer` picks its dialects (OpenAI's, or Azure's two styles, and
Anthropic's beside them) and a population of batches, and serves them through
`Endpoints` on a `Site`, an aiohttp.web app on a port whose requests still in
flight are cancelled when it closes; a living one may push webhooks through a
`Pusher` as its batches finish.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Final, Self

from aiohttp import web
from attrs import frozen

from .._site import Site
from .anthropic import AnthropicDialect
from .clocks import AcceleratedClock, ManualClock, finite_seconds
from .dialects import AZURE_API_VERSION, Dialects
from .endpoints import Endpoints
from .faults import Fault, FaultPicker, FaultPlan
from .living import populate
from .pushing import ATTEMPTS, BACKLOG, BACKOFF, WebhookCounters, make_pusher

_RECORDED: Final = 10_000
"""How many of the latest requests a server keeps by default: enough for any test's
reading, and a bound for a server left running."""


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

    @classmethod
    def of(cls, request: web.Request) -> RecordedRequest:
        """What is recorded of `request`."""
        return cls(request.method, request.path, dict(request.query), dict(request.headers))


class FakeBatchesServer(WebhookCounters):
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

    Beside them the same batches are Anthropic's Message Batches below `anthropic_url`,
    in Anthropic's shapes (see `AnthropicDialect`); their list requests are page requests.

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

    A living server given `webhook_url` POSTs an OpenAI-shaped event signed with
    `webhook_secret` (`batch.completed`, ... with `data.id`) for each batch that
    finishes after it was made, in finishing order, read from its clock at each request
    and every 50 ms while it runs. Deliveries go out one at a time (10 s each), retried
    after `webhook_backoff` seconds, doubling up to 30 s, for `webhook_attempts` tries;
    `webhook_faults` drops, duplicates (one `webhook-id`) or stalls them by event index;
    at most `webhook_backlog` wait (the oldest let go beyond it); closing cancels them.
    The `webhook...` counters say what became of each.

    Args:
        batches: the batches to serve, newest first; by default `count` synthetic ones.
            With a clock they are served as given, beneath the arrivals.
        count: how many synthetic batches to generate when `batches` is not given.
        seed: seed of the synthetic batches (and of their timelines and arrivals).
        api_key: when set, requests must carry it as `Authorization: Bearer <api_key>`.
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
        webhook_url: with a clock, where to POST a signed event as each batch finishes.
        webhook_secret: the secret signing the webhooks (required with `webhook_url`);
            `whsec_...` is base64 of the key, any other string its UTF-8 bytes.
        webhook_faults: a `FaultPlan`, or a mapping of event index to `Fault`: drop,
            duplicate or stall faults for the webhooks.
        webhook_attempts: how many times a delivery is tried before it is given up.
        webhook_backoff: real seconds before a failed delivery's first retry.
        webhook_backlog: how many deliveries may wait at once (default 10,000).
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
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_faults: FaultPlan | Mapping[int, Fault] | None = None,
        webhook_attempts: int = ATTEMPTS,
        webhook_backoff: float = BACKOFF,
        webhook_backlog: int = BACKLOG,
    ) -> None:
        _check_living(clock, arrival_every, retention)
        self._pusher = make_pusher(
            living=clock is not None,
            url=webhook_url,
            secret=webhook_secret,
            faults=webhook_faults,
            attempts=webhook_attempts,
            backoff=webhook_backoff,
            backlog=webhook_backlog,
            seed=seed,
        )
        if record_requests < 0:
            raise ValueError(f"record_requests must be >= 0, got {record_requests!r}")
        if azure_api_version is not None and not azure:
            raise ValueError("azure_api_version applies to an Azure server: pass azure=True too")
        # Without a clock, given batches read back as the very list given; synthetic ones
        # are held only encoded, and decoded once, when first asked for.
        self._static = None if batches is None or clock is not None else list(batches)
        self._population = populate(
            batches,
            count=count,
            seed=seed,
            clock=clock,
            every=arrival_every,
            retention=retention,
            on_finish=None if self._pusher is None else self._pusher.push,
        )
        self.clock = clock
        """The clock that makes the batches live; None for batches that never change."""
        self.webhook_url = webhook_url
        """Where webhooks are pushed as batches finish; None: nowhere."""
        self.poll_after_ms = poll_after_ms
        """Sent as `openai-poll-after-ms` on list and retrieve answers when not None."""
        self.api_key = api_key
        """The key requests must carry: as Bearer, `api-key` or `x-api-key`; None: any."""
        self.latency = latency
        """Seconds each list or retrieve request waits before it is answered."""
        self.azure = azure
        """Whether the server speaks Azure OpenAI's two API styles instead of OpenAI's."""
        self.azure_api_version = (azure_api_version or AZURE_API_VERSION) if azure else None
        """The `api-version` that `/openai/batches` accepts; None unless `azure`."""
        self._dialects = Dialects.serving(self.azure_api_version, beside=(AnthropicDialect(),))
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
        self._endpoints = Endpoints(
            self._dialects, self._population, self, FaultPicker(faults), record=self._record
        )
        self._site = Site(host, port, self._endpoints.route)

    @property
    def url(self) -> str:
        """Base URL to hand to a client: ending in `/v1`, or the endpoint in Azure mode."""
        return self._site.url + self._dialects.url_suffix

    @property
    def anthropic_url(self) -> str:
        """Base URL to hand to an Anthropic client (no `/v1`: it appends `/v1/messages/...`)."""
        return self._site.url + AnthropicDialect.url_suffix

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force; assign a new one (or a mapping) at any time."""
        return self._endpoints.picker.plan

    @faults.setter
    def faults(self, faults: FaultPlan | Mapping[int, Fault] | None) -> None:
        self._endpoints.picker = FaultPicker(faults)

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
        return [request for request in self._recorded if self._dialects.lists(request.path)]

    @property
    def retrieve_requests(self) -> list[RecordedRequest]:
        """The recorded requests made to retrieve one batch (`GET .../batches/{id}`), in order."""
        return [request for request in self._recorded if self._dialects.retrieves(request.path)]

    async def start(self) -> None:
        """Bind the port and start serving (and pushing webhooks, with `webhook_url`)."""
        await self._site.start()
        if self._pusher is not None:
            await self._pusher.start(self._population.catch_up)

    async def close(self) -> None:
        """Stop serving and release the port; idempotent.

        Requests still being answered (a stall, a latency) are cancelled, and their
        connections dropped, so closing never waits for them; so is a webhook delivery
        under way, and those still waiting are never delivered.
        """
        try:
            await self._site.close()
        finally:
            if self._pusher is not None:
                await self._pusher.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _record(self, request: web.Request) -> None:
        """Count `request`, note its connection, and keep it if the server keeps any."""
        transport = request.transport
        if transport is not None:
            self._connections.add(transport)
            self.peak_connections = max(self.peak_connections, self.open_connections)
        self.request_count += 1
        if self._dialects.lists(request.path):
            self.page_request_count += 1
        elif self._dialects.retrieves(request.path):
            self.retrieve_request_count += 1
        if self._recorded.maxlen:
            self._recorded.append(RecordedRequest.of(request))


def _check_living(
    clock: ManualClock | AcceleratedClock | None, arrival_every: float, retention: float | None
) -> None:
    """Refuse living settings that are out of range, or that have no clock to live by."""
    if finite_seconds("arrival_every", arrival_every) < 0:
        raise ValueError(f"arrival_every must be finite seconds >= 0, got {arrival_every!r}")
    if arrival_every and clock is None:
        raise ValueError("arrival_every needs a clock to arrive by")
    if retention is not None:
        if finite_seconds("retention", retention) <= 0:
            raise ValueError(f"retention must be finite seconds > 0, got {retention!r}")
        if clock is None:
            raise ValueError("retention needs a clock to age batches by")
