"""The fake server's request handlers: list and retrieve, as each path's dialect shapes them.

Each request is routed to the dialect that serves its path, recorded and checked
(auth, the headers the API requires, then the query), answered after the
server's latency, and for a list request replaced by the fault the plan picks.
Every answer carries a request id, given once per request so that an error body
that names it names the same; refusals are decided by the dialect.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Protocol

from aiohttp import web
from attrs import define, field

from .dialects import Dialect, Dialects, PageQuery, Refusal
from .faults import Answers, FaultPicker, misbehave
from .living import LivingBatches


class Live(Protocol):
    """What the endpoints read of their server as it serves: the settings its owner may
    change at any time, and the count of list requests that faults are picked by."""

    api_key: str | None
    latency: float
    poll_after_ms: int | None
    page_request_count: int


@define
class Endpoints:
    """Answers the requests to each dialect's paths from one population of batches."""

    _dialects: Dialects
    _population: LivingBatches
    _live: Live
    picker: FaultPicker
    """Picks the fault for each list request; replaced when the plan is."""
    _record: Callable[[web.Request], None] = field(kw_only=True)
    """Counts and records each request as it comes."""
    _request_ids: Iterator[int] = field(init=False, factory=lambda: itertools.count(1))

    def route(self, app: web.Application) -> None:
        """Route each dialect's paths to list and retrieve in that dialect, and any other
        path to a 404."""
        for dialect in self._dialects.every:
            app.router.add_get(dialect.list_path, functools.partial(self._list_batches, dialect))
            app.router.add_get(
                dialect.list_path + "/{batch_id}", functools.partial(self._retrieve_batch, dialect)
            )
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    async def _list_batches(self, dialect: Dialect, request: web.Request) -> web.StreamResponse:
        fault = self.picker.pick(self._live.page_request_count)
        self._record(request)
        rid = self._request_id()
        query = self._check(dialect, request) or dialect.page_query(request.query)
        if isinstance(query, Refusal):
            return self._refuse(dialect, rid, query)
        places = self._places(dialect, query)
        if isinstance(places, Refusal):
            return self._refuse(dialect, rid, places)
        start, above = places
        if self._live.latency:
            await asyncio.sleep(self._live.latency)
        if fault is None:
            return self._answer(dialect, rid, self._page(dialect, start, above, query.limit))
        answers = Answers(
            page=lambda: self._page(dialect, start, above, query.limit),
            first_page=lambda: self._page(dialect, None, None, query.limit),
            claiming_more=dialect.claiming_more,
            error=lambda status: dialect.error_body(dialect.injected(status), rid),
            stamp=functools.partial(self._stamp, dialect, rid),
        )
        return await misbehave(fault, request, answers)

    def _places(
        self, dialect: Dialect, query: PageQuery
    ) -> tuple[int | None, int | None] | Refusal:
        """Where the page's cursors sit (below `after`, or above `before`), or the 400 for
        a cursor naming no batch served."""
        found: list[int | None] = []
        for cursor, batch_id in ((None, query.after), (dialect.before_cursor, query.before)):
            if batch_id is None:
                found.append(None)
                continue
            held = self._held(dialect, batch_id)
            if held is None:
                return dialect.unknown_cursor(batch_id, cursor)
            found.append(held[1])
        return found[0], found[1]

    async def _retrieve_batch(self, dialect: Dialect, request: web.Request) -> web.StreamResponse:
        self._record(request)
        rid = self._request_id()
        refusal = self._check(dialect, request) or dialect.check_query(request.query)
        if refusal is not None:
            return self._refuse(dialect, rid, refusal)
        batch_id = request.match_info["batch_id"]
        held = self._held(dialect, batch_id)
        if held is None:
            return self._refuse(dialect, rid, dialect.no_batch(batch_id))
        if self._live.latency:
            await asyncio.sleep(self._live.latency)
        body = self._population.get(held[0])
        if body is None:  # it grew older than the retention while the answer waited
            return self._refuse(dialect, rid, dialect.no_batch(batch_id))
        return self._answer(dialect, rid, dialect.batch(body, self._population.rank(held[0])))

    def _held(self, dialect: Dialect, batch_id: str) -> tuple[str, int] | None:
        """The id and place of the batch `dialect` names `batch_id`, or None if none is served."""
        for held in dialect.held_ids(batch_id):
            place = self._population.place(held)
            if place is not None:
                return held, place
        return None

    async def _not_found(self, request: web.Request) -> web.Response:
        self._record(request)
        dialect = self._dialects.owner(request.path)
        return self._refuse(
            dialect, self._request_id(), dialect.not_found(request.method, request.path)
        )

    def _check(self, dialect: Dialect, request: web.Request) -> Refusal | None:
        """The 401 for a request without the key, when one is set; then the refusal of
        headers the API requires."""
        key = self._live.api_key
        refusal = None if key is None else dialect.check_auth(request.headers, key)
        return refusal or dialect.check_headers(request.headers)

    def _page(self, dialect: Dialect, start: int | None, above: int | None, limit: int) -> bytes:
        """The list body of `limit` batches below place `start` (or just above place
        `above`), in `dialect`'s envelope."""
        if above is not None:
            return dialect.page(self._population.page_above(above, limit))
        return dialect.page(self._population.page(start, limit))

    def _answer(self, dialect: Dialect, rid: str, body: bytes) -> web.Response:
        """A successful answer, with the polling hint when one is set and the API has one."""
        response = web.Response(body=body, content_type="application/json")
        hint = dialect.poll_after_header
        if self._live.poll_after_ms is not None and hint is not None:
            response.headers[hint] = str(self._live.poll_after_ms)
        self._stamp(dialect, rid, response)
        return response

    def _refuse(self, dialect: Dialect, rid: str, refusal: Refusal) -> web.Response:
        """An error answer, in the dialect's shape."""
        body = dialect.error_body(refusal, rid)
        response = web.Response(status=refusal.status, body=body, content_type="application/json")
        self._stamp(dialect, rid, response)
        return response

    def _request_id(self) -> str:
        """A new request's id."""
        return f"req_{next(self._request_ids):032x}"

    def _stamp(self, dialect: Dialect, rid: str, response: web.StreamResponse) -> None:
        """Give an answer its request id."""
        response.headers[dialect.request_id_header] = rid
