"""How the fake server misbehaves: the faults, the plans that pick them, and serving one.

A `FaultPlan` says which list requests (or webhook deliveries) go wrong (by index,
or by seeded chance), a `FaultPicker` replays it one by one, and `misbehave` serves
the fault picked in place of the page: an error status (with e.g. Retry-After), a
dropped or cut connection, a stall, a pagination loop or an empty page that claims
more. A webhook delivery knows three of the kinds: dropped, duplicated, stalled.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from aiohttp import web
from attrs import field, frozen


class FaultKind(enum.Enum):
    """The ways the fake server can misbehave."""

    STATUS = "status"
    """Answer with `status`, `headers` and `body` (an OpenAI-shaped error by default)."""
    DROP = "drop"
    """Close the connection without answering; a webhook: never delivered."""
    TRUNCATE = "truncate"
    """Announce the full page's length, send half of it, and close."""
    STALL = "stall"
    """Wait `seconds` before answering normally; a webhook: delivered that much later."""
    CYCLE = "cycle"
    """Answer with the first page again, whatever the cursor (a pagination loop)."""
    EMPTY_HAS_MORE = "empty_has_more"
    """Answer an empty page that claims `has_more: true`."""
    DUPLICATE = "duplicate"
    """Deliver a webhook twice, with one `webhook-id` (webhooks only)."""


PAGE_FAULTS: Final = frozenset(FaultKind) - {FaultKind.DUPLICATE}
"""The kinds a list request can be served."""
WEBHOOK_FAULTS: Final = frozenset({FaultKind.DROP, FaultKind.DUPLICATE, FaultKind.STALL})
"""The kinds a webhook delivery can suffer."""


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
    """How long to hold the answer (or the webhook) back, for `FaultKind.STALL`."""

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection before replying; a webhook so faulted is never delivered."""
        return cls(FaultKind.DROP)

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
    def truncate(cls) -> Fault:
        """Cut the page's body short after its headers promised all of it."""
        return cls(FaultKind.TRUNCATE)

    @classmethod
    def stall(cls, seconds: float) -> Fault:
        """Hold the answer back for `seconds`; a webhook so faulted is delivered that much
        later, so the deliveries after it overtake it."""
        return cls(FaultKind.STALL, seconds=seconds)

    @classmethod
    def cycle(cls) -> Fault:
        """Serve the first page again, so the cursor comes back to one seen before."""
        return cls(FaultKind.CYCLE)

    @classmethod
    def empty_has_more(cls) -> Fault:
        """Serve an empty page that still claims more."""
        return cls(FaultKind.EMPTY_HAS_MORE)

    @classmethod
    def duplicate(cls) -> Fault:
        """Deliver a webhook twice, both with the same `webhook-id` (webhooks only)."""
        return cls(FaultKind.DUPLICATE)


@frozen
class FaultPlan:
    """Which requests to the list endpoint (or which webhooks) misbehave, and how.

    Attributes:
        at: faults by the 0-based index of the page request (retries count too), or
            of the webhook event (in the order the batches finished).
        rate: chance that any other request draws a fault from `pool`.
        pool: the faults drawn by chance.
        seed: seed of those draws, so a plan replays identically.
    """

    at: Mapping[int, Fault] = field(factory=dict)
    rate: float = 0.0
    pool: Sequence[Fault] = ()
    seed: int = 0


class FaultPicker:
    """Replays a plan: the fault for each successive request, if any.

    A plan holding a fault of a kind not in `kinds` is a ValueError naming `name`.
    """

    def __init__(
        self,
        plan: FaultPlan | Mapping[int, Fault] | None,
        *,
        kinds: frozenset[FaultKind] = PAGE_FAULTS,
        name: str = "faults",
    ) -> None:
        if not isinstance(plan, FaultPlan):
            plan = FaultPlan(at=dict(plan or {}))
        for fault in (*plan.at.values(), *plan.pool):
            if fault.kind not in kinds:
                known = ", ".join(sorted(kind.value for kind in kinds))
                raise ValueError(
                    f"{name} cannot hold a {fault.kind.value} fault (kinds it takes: {known})"
                )
        self.plan = plan
        """The plan replayed, a mapping of faults made into one."""
        self._random = random.Random(plan.seed)  # noqa: S311 - reproducible test faults

    def pick(self, index: int) -> Fault | None:
        """The fault for the request of this index, or None to answer it well."""
        plan = self.plan
        if index in plan.at:
            return plan.at[index]
        if plan.pool and plan.rate and self._random.random() < plan.rate:
            return self._random.choice(plan.pool)
        return None


@frozen
class Answers:
    """What a fault is served with: the bodies as the server's dialect shapes them, and
    the stamp (a request id) every answer carries."""

    page: Callable[[], bytes]
    """The page that was asked for."""
    first_page: Callable[[], bytes]
    """The first page, whatever the cursor."""
    claiming_more: Callable[[], bytes]
    """An empty page that claims more."""
    error: Callable[[int], bytes]
    """The error body of an injected status."""
    stamp: Callable[[web.StreamResponse], None]
    """Marks an answer before it is sent."""


async def misbehave(fault: Fault, request: web.Request, answers: Answers) -> web.StreamResponse:
    """Serve `fault` to `request` in place of its page."""
    match fault.kind:
        case FaultKind.STATUS:
            body = answers.error(fault.status) if fault.body is None else fault.body
            response = web.Response(status=fault.status, body=body, headers=fault.headers)
            response.content_type = fault.content_type
            answers.stamp(response)
            return response
        case FaultKind.DROP:
            _close(request)
            return web.Response()
        case FaultKind.TRUNCATE:
            body = answers.page()
            truncated = web.StreamResponse()
            truncated.content_type = "application/json"
            truncated.content_length = len(body)
            answers.stamp(truncated)
            await truncated.prepare(request)
            await truncated.write(body[: len(body) // 2])
            _close(request)
            return truncated
        case FaultKind.STALL:
            await asyncio.sleep(fault.seconds)
            page = answers.page()
        case FaultKind.CYCLE:
            page = answers.first_page()
        case FaultKind.EMPTY_HAS_MORE:
            page = answers.claiming_more()
    response = web.Response(body=page, content_type="application/json")
    answers.stamp(response)
    return response


def _close(request: web.Request) -> None:
    """Drop the client's connection at once."""
    if request.transport is not None:
        request.transport.close()
