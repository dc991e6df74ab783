"""The fake server's request handlers: list and retrieve, as each path's dialect shapes them.

Each request is routed to the dialect that serves its path, recorded and checked
(auth, then the query), answered after the server's latency, and for a list
request replaced by the fault the plan picks. Every answer carries a request id;
refusals are decided by the dialect.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Protocol

from aiohttp import web
from attrs import define, field

from .dialects import Dialect, Dialects, Refusal
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
        for dialect in self._dialects.each:
            app.router.add_get(dialect.list_path, functools.partial(self._list_batches, dialect))
            app.router.add_get(
                dialect.list_path + "/{batch_id}", functools.partial(self._retrieve_batch, dialect)
            )
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    async def _list_batches(self, dialect: Dialect, request: web.Request) -> web.StreamResponse:
        fault = self.picker.pick(self._live.page_request_count)
        self._record(request)
        query = self._check_auth(dialect, request) or dialect.page_query(request.query)
        if isinstance(query, Refusal):
            return self._refuse(dialect, query)
        start, limit = None, query.limit
        if query.after is not None:
            start = self._population.place(query.after)
            if start is None:
                return self._refuse(dialect, dialect.unknown_cursor(query.after))
        if self._live.latency:
            await asyncio.sleep(self._live.latency)
        if fault is None:
            return self._answer(dialect, self._page(dialect, start, limit))
        answers = Answers(
            page=lambda: self._page(dialect, start, limit),
            first_page=lambda: self._page(dialect, None, limit),
            claiming_more=dialect.claiming_more,
            error=lambda status: dialect.error_body(dialect.injected(status)),
            stamp=functools.partial(self._stamp, dialect),
        )
        return await misbehave(fault, request, answers)

    async def _retrieve_batch(self, dialect: Dialect, request: web.Request) -> web.StreamResponse:
        self._record(request)
        refusal = self._check_auth(dialect, request) or dialect.check_query(request.query)
        if refusal is not None:
            return self._refuse(dialect, refusal)
        batch_id = request.match_info["batch_id"]
        if self._population.place(batch_id) is None:
            return self._refuse(dialect, dialect.no_batch(batch_id))
        if self._live.latency:
            await asyncio.sleep(self._live.latency)
        body = self._population.get(batch_id)
        if body is None:  # it grew older than the retention while the answer waited
            return self._refuse(dialect, dialect.no_batch(batch_id))
        return self._answer(dialect, dialect.batch(body))

    async def _not_found(self, request: web.Request) -> web.Response:
        self._record(request)
        dialect = self._dialects.fallback
        return self._refuse(dialect, dialect.not_found(request.method, request.path))

    def _check_auth(self, dialect: Dialect, request: web.Request) -> Refusal | None:
        """The 401 for a request without the key, when one is set."""
        key = self._live.api_key
        return None if key is None else dialect.check_auth(request.headers, key)

    def _page(self, dialect: Dialect, start: int | None, limit: int) -> bytes:
        """The list body of `limit` batches below place `start`, in `dialect`'s envelope."""
        return dialect.page(self._population.page(start, limit))

    def _answer(self, dialect: Dialect, body: bytes) -> web.Response:
        """A successful answer, with the polling hint when one is set."""
        response = web.Response(body=body, content_type="application/json")
        if self._live.poll_after_ms is not None:
            response.headers[dialect.poll_after_header] = str(self._live.poll_after_ms)
        self._stamp(dialect, response)
        return response

    def _refuse(self, dialect: Dialect, refusal: Refusal) -> web.Response:
        """An error answer, in the dialect's shape."""
        body = dialect.error_body(refusal)
        response = web.Response(status=refusal.status, body=body, content_type="application/json")
        self._stamp(dialect, response)
        return response

    def _stamp(self, dialect: Dialect, response: web.StreamResponse) -> None:
        """Give an answer its request id."""
        response.headers[dialect.request_id_header] = f"req_{next(self._request_ids):032x}"
