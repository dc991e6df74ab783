"""One HTTP attempt: send, follow same-origin redirects, read the body within bounds.

The transport owns (or borrows) the aiohttp session. One `timeout` covers an
attempt's credentials, every redirect hop and the body; a page is read to
16 MiB and an error body to 64 KiB; aiohttp's errors become ours; and every
request is logged once at DEBUG, credentials redacted. The request id a server
sends back is redacted here, where it is read, so every log, error and terminal
that shows it gets it clean.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import aiohttp
from attrs import frozen
from yarl import URL

from ._body import MAX_ERROR_BYTES, MAX_PAGE_BYTES, read_bounded
from ._config import Proxies
from ._errors import APIConnectionError, APIError, APITimeoutError
from ._redact import Redactor
from ._retry import Failure

logger: Final = logging.getLogger("aiobatches")
MAX_REDIRECTS: Final = 10
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


@frozen
class Response:
    """A final response, its body read within bounds."""

    status: int
    reason: str | None
    headers: Mapping[str, str]
    charset: str | None
    body: bytes
    over_limit: bool
    """The body went past its bound (16 MiB for a page); `body` holds only its start."""
    request_id: str | None
    """The `x-request-id` (OpenAI) or `request-id` (Anthropic) header, redacted: a server or
    proxy may echo a credential in it."""


class Transport:
    """Sends requests through one session: ours, made lazily in the running loop, or borrowed."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession | None,
        connection_limit: int,
        timeout: aiohttp.ClientTimeout,
        proxies: Proxies,
        redactor: Redactor,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._connection_limit = connection_limit
        self._timeout = timeout
        self._proxies = proxies
        self._redactor = redactor
        self._loop: asyncio.AbstractEventLoop | None = None

    async def attempt(
        self,
        url: URL,
        params: Mapping[str, str],
        headers: Callable[[], Awaitable[Mapping[str, str]]],
        *,
        cursor: str | None,
        attempt: int,
    ) -> Response | Failure:
        """One attempt within one `timeout`: the credentials, every redirect hop, the body."""
        session = self._session_for(cursor)
        try:
            async with asyncio.timeout(self._timeout.total):
                return await self._send(
                    session, url, params, headers, cursor=cursor, attempt=attempt
                )
        except TimeoutError as error:
            return self._failure(error, url, cursor)

    async def aclose(self) -> None:
        """Close the session if it is ours; a borrowed one is never closed."""
        session = self._session
        if not self._owns_session or session is None:
            return
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            # Its connections belong to a loop that has ended: nothing can close them now.
            session.detach()
            return
        await session.close()

    def _session_for(self, cursor: str | None) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "this client was first used in another event loop (each asyncio.run()"
                " makes a new one); create one client per event loop"
            )
        if self._session is None:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connection_limit)
            )
            # aiohttp silently re-sends a request once when a pooled connection
            # drops; our own retries already cover that, and one attempt must be
            # one request for `max_retries` to mean what it says. aiohttp's
            # TestClient flips the same switch.
            if hasattr(session, "_retry_connection"):
                session._retry_connection = False
            self._session = session
        elif self._session.closed:
            raise APIConnectionError(
                "the aiohttp.ClientSession lent to this client was closed; keep it open"
                " while the client lists",
                cursor=cursor,
            )
        return self._session

    async def _send(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        params: Mapping[str, str] | None,
        headers: Callable[[], Awaitable[Mapping[str, str]]],
        *,
        cursor: str | None,
        attempt: int,
    ) -> Response | Failure:
        origin = url.origin()
        sent = await headers()
        for _ in range(MAX_REDIRECTS + 1):
            started = time.perf_counter()
            status: int | None = None
            request_id: str | None = None
            try:
                async with session.get(
                    url,
                    params=params,
                    headers=sent,
                    timeout=self._timeout,
                    allow_redirects=False,
                    raise_for_status=False,
                    proxy=self._proxies.for_url(url),
                ) as response:
                    status = response.status
                    request_id = self._request_id(response)
                    target = _same_origin_redirect(response, origin)
                    if target is None:
                        return await _read(response, request_id)
            except (TimeoutError, aiohttp.ClientError) as error:
                return self._failure(error, url, cursor)
            finally:
                self._log(
                    url,
                    params,
                    status=status,
                    request_id=request_id,
                    attempt=attempt,
                    started=started,
                )
            url, params = target, None
        too_many = APIConnectionError(f"more than {MAX_REDIRECTS} redirects", cursor=cursor)
        return Failure(too_many, retry=False)

    def _request_id(self, response: aiohttp.ClientResponse) -> str | None:
        """The response's request id with the credentials sent (a fresh token included) masked."""
        # OpenAI's `x-request-id`, else Anthropic's `request-id`.
        request_id = response.headers.get("x-request-id") or response.headers.get("request-id")
        return None if request_id is None else self._redactor.text(request_id)

    def _failure(self, error: BaseException, url: URL, cursor: str | None) -> Failure:
        """A connection that failed or timed out: worth another try."""
        if isinstance(error, TimeoutError):
            failure: APIError = APITimeoutError(f"request to {url} timed out", cursor=cursor)
        else:
            reason = self._redactor.text(str(error) or type(error).__name__)
            failure = APIConnectionError(f"connection to {url} failed: {reason}", cursor=cursor)
        failure.__cause__ = error
        return Failure(failure, retry=True)

    def _log(
        self,
        url: URL,
        params: Mapping[str, str] | None,
        *,
        status: int | None,
        request_id: str | None,
        attempt: int,
        started: float,
    ) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        full_url = self._redactor.text(str(url.update_query(params) if params else url))
        elapsed = time.perf_counter() - started
        logger.debug(
            "GET %s -> %s request_id=%s attempt=%d elapsed=%.3fs",
            full_url,
            status if status is not None else "no response",
            request_id,
            attempt,
            elapsed,
            extra={
                "method": "GET",
                "url": full_url,
                "status": status,
                "request_id": request_id,
                "attempt": attempt,
                "elapsed": elapsed,
            },
        )


def _same_origin_redirect(response: aiohttp.ClientResponse, origin: URL) -> URL | None:
    """Where a same-origin redirect points; None for any response to read as is."""
    location = response.headers.get("Location")
    if response.status not in _REDIRECTS or location is None:
        return None
    try:
        target = response.url.join(URL(location))
        same_origin = target.origin() == origin
    except (ValueError, UnicodeError):  # an unparsable Location is not followed
        return None
    return target if same_origin else None


async def _read(response: aiohttp.ClientResponse, request_id: str | None) -> Response:
    """The final response with its body: a page to 16 MiB, an error body to 64 KiB."""
    limit = MAX_ERROR_BYTES if response.status >= 300 else MAX_PAGE_BYTES
    announced = response.content_length
    if (
        limit == MAX_PAGE_BYTES
        and announced is not None
        and announced > limit
        and not response.headers.get("Content-Encoding")
    ):  # refused unread: its length is announced, not guessed
        response.close()
        body, over = b"", True
    else:
        body, over = await read_bounded(response, limit)
    return Response(
        status=response.status,
        reason=response.reason,
        headers=response.headers,
        charset=response.charset,
        body=body,
        over_limit=over and limit == MAX_PAGE_BYTES,
        request_id=request_id,
    )
