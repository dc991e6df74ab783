"""A real aiohttp.web server with the semantics of `GET /v1/batches`, for tests and demos.

`FakeBatchesServer` serves seeded synthetic batches newest first, validates
`limit` and `after` with OpenAI-shaped 400 errors, checks Bearer auth when a
key is configured, and records every request it sees.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import orjson
from aiohttp import web
from attrs import frozen

from ._retry import recorded_sleeps
from ._synthetic import synthetic_batches

__all__ = ["FakeBatchesServer", "RecordedRequest", "recorded_sleeps", "synthetic_batches"]

_DEFAULT_LIMIT: Final = 20
_MAX_LIMIT: Final = 100


@frozen
class RecordedRequest:
    """One request the fake server received."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]


class FakeBatchesServer:
    """The list-batches endpoint on 127.0.0.1 (port 0 by default); an async context manager.

    Args:
        batches: the batches to serve, newest first; by default `count` synthetic ones.
        count: how many synthetic batches to generate when `batches` is not given.
        seed: seed of the synthetic batches.
        api_key: when set, requests must carry `Authorization: Bearer <api_key>`.
        latency: seconds each page request waits before it is answered.
    """

    def __init__(
        self,
        batches: Sequence[Mapping[str, Any]] | None = None,
        *,
        count: int = 250,
        seed: int = 0,
        api_key: str | None = None,
        latency: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.batches: list[Mapping[str, Any]] = list(
            synthetic_batches(count, seed=seed) if batches is None else batches
        )
        self.api_key = api_key
        self.latency = latency
        self.requests: list[RecordedRequest] = []
        self._host = host
        self._port = port
        self._encoded = [orjson.dumps(batch) for batch in self.batches]
        self._positions = {batch["id"]: index for index, batch in enumerate(self.batches)}
        self._request_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL to hand to a client, ending in `/v1`."""
        if self._url is None:
            raise RuntimeError("the server is not running; use `async with` or `await start()`")
        return self._url

    @property
    def page_requests(self) -> list[RecordedRequest]:
        """The requests made to the list endpoint, in order."""
        return [request for request in self.requests if request.path == "/v1/batches"]

    async def start(self) -> None:
        """Bind the port and start serving."""
        app = web.Application()
        app.router.add_get("/v1/batches", self._list_batches)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://{host}:{port}/v1"

    async def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

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
        self._record(request)
        refusal = self._check_auth(request)
        if refusal is not None:
            return refusal
        limit = _parse_limit(request.query.get("limit"))
        if isinstance(limit, web.Response):
            return self._with_request_id(limit)
        after = request.query.get("after")
        start = 0
        if after is not None:
            if after not in self._positions:
                return self._error(
                    400, f"Invalid 'after': no batch with id '{after}' was found.", "after"
                )
            start = self._positions[after] + 1
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._with_request_id(
            web.Response(body=self._page(start, limit), content_type="application/json")
        )

    def _page(self, start: int, limit: int) -> bytes:
        """The page body, assembled from pre-encoded batches."""
        end = min(start + limit, len(self._encoded))
        window = self.batches[start:end]
        envelope = {
            "object": "list",
            "first_id": window[0]["id"] if window else None,
            "last_id": window[-1]["id"] if window else None,
            "has_more": end < len(self._encoded),
        }
        data = b"[" + b",".join(self._encoded[start:end]) + b"]"
        return b'{"data":' + data + b"," + orjson.dumps(envelope)[1:]

    def _record(self, request: web.Request) -> None:
        self.requests.append(
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
        return self._error(404, f"Invalid URL ({request.method} {request.path})")

    def _error(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> web.Response:
        return self._with_request_id(_error_response(status, message, param, code))

    def _with_request_id(self, response: web.Response) -> web.Response:
        response.headers["x-request-id"] = f"req_{next(self._request_ids):032x}"
        return response


def _parse_limit(raw: str | None) -> int | web.Response:
    """The page size, or the 400 the real API answers for a bad one."""
    if raw is None:
        return _DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        return _error_response(
            400,
            f"Invalid 'limit': expected an integer, but got '{raw}' instead.",
            "limit",
            "invalid_type",
        )
    if limit < 1:
        return _error_response(
            400,
            f"Invalid 'limit': integer below minimum value. Expected a value >= 1, "
            f"but got {limit} instead.",
            "limit",
            "integer_below_min_value",
        )
    if limit > _MAX_LIMIT:
        return _error_response(
            400,
            f"Invalid 'limit': integer above maximum value. Expected a value <= {_MAX_LIMIT}, "
            f"but got {limit} instead.",
            "limit",
            "integer_above_max_value",
        )
    return limit


def _error_response(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> web.Response:
    body = {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def _mask(key: str) -> str:
    """Show a wrong key the way OpenAI does: a few characters at each end."""
    return f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
