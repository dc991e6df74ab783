"""The webhooks a living fake server pushes: a signed event for each batch that finishes.

A `Pusher` turns each `Finish` into an OpenAI-shaped event and delivers it from a
task of its own, by real HTTP, signed as OpenAI signs (Standard Webhooks), retried
with capped exponential backoff, and misbehaving as a `FaultPlan` says (dropped,
duplicated with one `webhook-id`, stalled so that later ones overtake it).
Deliveries waiting (fresh, stalled or between attempts) are held by when each is
due, never more than `backlog` of them: beyond, the oldest is let go and counted,
so memory stays bounded however many batches finish at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
from collections.abc import Callable, Mapping
from typing import Final

import aiohttp
import yarl
from attrs import define

from .._body import dumps
from .._webhooks import key_of, sign_headers
from .clocks import finite_seconds
from .faults import WEBHOOK_FAULTS, Fault, FaultKind, FaultPicker, FaultPlan
from .living import Finish

ATTEMPTS: Final = 6
"""How many times a delivery is tried by default before it is given up."""
BACKOFF: Final = 0.1
"""Real seconds before the first retry by default; each further retry waits twice as long."""
BACKLOG: Final = 10_000
"""How many deliveries may wait at once by default."""
_BACKOFF_CAP: Final = 30.0
"""The longest wait between two attempts, however many were made."""
_ATTEMPT_TIMEOUT: Final = 10.0
"""Real seconds a receiver has to answer one delivery before the attempt counts as failed."""
_TICK: Final = 0.05
"""Real seconds between two readings of the clock when nothing else happens, so batches
finishing on an accelerated clock are pushed without a request to the server."""


@define
class _Delivery:
    """One event to POST: its `webhook-id`, its body, and the attempts made so far."""

    msg_id: str
    body: bytes
    attempts: int = 0


class Pusher:
    """Delivers a signed event to `url` for each batch that finishes; counts what became of each.

    `push` (synchronous, called as the population reads its clock) queues the events;
    `start` opens a client session and the task that delivers them and reads the clock
    every `_TICK` seconds through `catch_up`; `close` lets go of the deliveries waiting,
    cancels that task, awaits it, and closes the session.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        faults: FaultPlan | Mapping[int, Fault] | None,
        attempts: int,
        backoff: float,
        backlog: int,
        seed: int,
    ) -> None:
        self.url = url
        self._secret = secret
        self._picker = FaultPicker(faults, kinds=WEBHOOK_FAULTS, name="webhook_faults")
        self._attempts = attempts
        self._backoff = backoff
        self._backlog = backlog
        self._ids = random.Random(f"{seed}-webhooks")  # noqa: S311 - reproducible test ids
        # Waiting deliveries by the order they were queued (so the oldest is the first),
        # and a heap of (due, order) on time.monotonic(); entries of deliveries let go
        # stay in the heap until popped or compacted away.
        self._waiting: dict[int, _Delivery] = {}
        self._due: list[tuple[float, int]] = []
        self._order = 0
        self._wake = asyncio.Event()
        self._catch_up: Callable[[], None] = _nothing
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.events = 0
        """Events made: one per finished batch, faulted or not."""
        self.delivered = 0
        """Deliveries a receiver accepted with a 2xx (a duplicated event's two both count)."""
        self.failed = 0
        """Attempts that failed: refused, cut, timed out, or answered other than 2xx."""
        self.given_up = 0
        """Deliveries abandoned after their last attempt failed."""
        self.dropped = 0
        """Events never delivered because a `Fault.drop()` said so."""
        self.overflowed = 0
        """Waiting deliveries let go, the oldest first, when more than `backlog` waited."""

    @property
    def waiting(self) -> int:
        """Deliveries waiting now: fresh, stalled, or between attempts."""
        return len(self._waiting)

    def push(self, finishes: list[Finish]) -> None:
        """Queue an event for each of `finishes` (in order), as the fault plan says."""
        for finish in finishes:
            fault = self._picker.pick(self.events)
            self.events += 1
            event = {
                "id": f"evt_{self._ids.getrandbits(128):032x}",
                "object": "event",
                "created_at": finish.at,
                "type": f"batch.{finish.status}",
                "data": {"id": finish.batch_id},
            }
            msg_id = f"wh_{self._ids.getrandbits(128):032x}"
            kind = None if fault is None else fault.kind
            if kind is FaultKind.DROP:
                self.dropped += 1
                continue
            delay = fault.seconds if fault is not None and kind is FaultKind.STALL else 0.0
            body = dumps(event)
            for _ in range(2 if kind is FaultKind.DUPLICATE else 1):
                self._queue(_Delivery(msg_id, body), delay)
        self._wake.set()

    def _queue(self, delivery: _Delivery, delay: float) -> None:
        """Hold a new delivery until `delay` seconds from now, letting the oldest go if full."""
        order = self._order
        self._order += 1
        self._waiting[order] = delivery
        heapq.heappush(self._due, (time.monotonic() + delay, order))
        if len(self._waiting) > self._backlog:
            del self._waiting[next(iter(self._waiting))]
            self.overflowed += 1
        if len(self._due) > 2 * self._backlog:
            self._due = [entry for entry in self._due if entry[1] in self._waiting]
            heapq.heapify(self._due)

    async def start(self, catch_up: Callable[[], None]) -> None:
        """Open the session and start delivering, reading the clock through `catch_up`."""
        self._catch_up = catch_up
        self._wake = asyncio.Event()  # of this loop, should the server restart in another
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_ATTEMPT_TIMEOUT))
        self._task = asyncio.create_task(self._run(self._session), name="fake webhooks")

    async def close(self) -> None:
        """Stop delivering and close the session; idempotent. The deliveries waiting, and one
        under way, are cancelled: let go, never delivered."""
        self._waiting.clear()
        self._due.clear()
        task, self._task = self._task, None
        session, self._session = self._session, None
        try:
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
        finally:
            if session is not None:
                await session.close()
        if task is not None and not task.cancelled():
            task.result()  # the error the task died of, if any

    async def _run(self, session: aiohttp.ClientSession) -> None:
        """Read the clock, deliver what is due, and sleep until the next is due or pushed."""
        while True:
            self._wake.clear()
            self._catch_up()
            while (due := self._pop_due()) is not None:
                await self._attempt(session, *due)
            wait = _TICK
            if self._due:
                wait = min(wait, self._due[0][0] - time.monotonic())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._wake.wait()

    def _pop_due(self) -> tuple[int, _Delivery] | None:
        """The waiting delivery due first, if it is due now (with its order)."""
        now = time.monotonic()
        while self._due and self._due[0][0] <= now:
            _, order = heapq.heappop(self._due)
            delivery = self._waiting.get(order)
            if delivery is not None:
                return order, delivery
        return None

    async def _attempt(
        self, session: aiohttp.ClientSession, order: int, delivery: _Delivery
    ) -> None:
        """POST `delivery` once; then let it go, or hold it for its next attempt."""
        ok = await self._post(session, delivery)
        delivery.attempts += 1
        if ok:
            self.delivered += 1
        else:
            self.failed += 1
        if order not in self._waiting:  # let go while it was being posted
            return
        if ok or delivery.attempts >= self._attempts:
            del self._waiting[order]
            self.given_up += not ok
            return
        delay = min(self._backoff * 2 ** (delivery.attempts - 1), _BACKOFF_CAP)
        heapq.heappush(self._due, (time.monotonic() + delay, order))

    async def _post(self, session: aiohttp.ClientSession, delivery: _Delivery) -> bool:
        """Whether the receiver accepted one signed POST of `delivery` with a 2xx."""
        # Signed at each attempt, with the real time, as receivers check it against theirs.
        headers = sign_headers(
            delivery.body, self._secret, msg_id=delivery.msg_id, timestamp=int(time.time())
        )
        headers["content-type"] = "application/json"
        try:
            async with session.post(
                self.url, data=delivery.body, headers=headers, allow_redirects=False
            ) as response:
                return 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            return False


def _nothing() -> None:
    """Reads no clock: a pusher not started yet."""


def make_pusher(
    *,
    living: bool,
    url: str | None,
    secret: str | None,
    faults: FaultPlan | Mapping[int, Fault] | None,
    attempts: int,
    backoff: float,
    backlog: int,
    seed: int,
) -> Pusher | None:
    """The pusher these webhook settings ask for (None without a URL); a ValueError for
    settings out of range, or that cannot go together."""
    if url is None:
        if secret is not None or faults is not None:
            raise ValueError("webhook_secret and webhook_faults need a webhook_url to apply to")
        return None
    parsed = yarl.URL(url)
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise ValueError(f"webhook_url must be an http or https URL, got {url!r}")
    if not living:
        raise ValueError("webhook_url needs a clock: only a living server's batches finish")
    if not secret:
        raise ValueError("webhook_url needs a webhook_secret to sign the deliveries with")
    key_of(secret)  # a `whsec_` secret that is not base64 is refused now, not at delivery
    _at_least_one("webhook_attempts", attempts)
    if finite_seconds("webhook_backoff", backoff) < 0:
        raise ValueError(f"webhook_backoff must be finite seconds >= 0, got {backoff!r}")
    _at_least_one("webhook_backlog", backlog)
    return Pusher(
        url, secret, faults=faults, attempts=attempts, backoff=backoff, backlog=backlog, seed=seed
    )


class WebhookCounters:
    """What became of a server's webhooks, as read-only counters (all 0 without any)."""

    _pusher: Pusher | None

    @property
    def webhook_events(self) -> int:
        """Webhook events made so far: one per batch finished, whatever its faults."""
        return 0 if self._pusher is None else self._pusher.events

    @property
    def webhooks_delivered(self) -> int:
        """Webhook deliveries the receiver accepted with a 2xx; a duplicate counts twice."""
        return 0 if self._pusher is None else self._pusher.delivered

    @property
    def webhooks_failed(self) -> int:
        """Webhook attempts that failed (refused, cut, timed out, or not 2xx), retries too."""
        return 0 if self._pusher is None else self._pusher.failed

    @property
    def webhooks_given_up(self) -> int:
        """Webhook deliveries abandoned after `webhook_attempts` failed attempts."""
        return 0 if self._pusher is None else self._pusher.given_up

    @property
    def webhooks_dropped(self) -> int:
        """Webhook events never delivered because `webhook_faults` dropped them."""
        return 0 if self._pusher is None else self._pusher.dropped

    @property
    def webhooks_overflowed(self) -> int:
        """Waiting webhook deliveries let go, the oldest first, beyond `webhook_backlog`."""
        return 0 if self._pusher is None else self._pusher.overflowed

    @property
    def webhooks_waiting(self) -> int:
        """Webhook deliveries waiting now: not yet due (a stall), due, or between attempts."""
        return 0 if self._pusher is None else self._pusher.waiting


def _at_least_one(name: str, value: object) -> None:
    """Refuse `value` unless it is a whole number >= 1 (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
