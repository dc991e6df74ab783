"""The client: configuration, session ownership, and one page request with retries.

Everything that touches HTTP lives here; pagination and prefetch live in
`_stream`. A client is unopened, open or closed; a borrowed session is never
closed by us, an owned one always is. An attempt returns a page or a
`_Failure` saying whether it is worth retrying; the retry loop decides.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import os
import platform
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Final, Self, TypedDict, Unpack

import aiohttp
from attrs import frozen
from yarl import URL

from . import _retry
from ._body import (
    MAX_ERROR_BYTES,
    MAX_PAGE_BYTES,
    BodyError,
    error_summary,
    loads,
    loads_exact,
    read_bounded,
    text_of,
)
from ._closing import CloseOnce
from ._config import (
    Proxies,
    check_count,
    check_headers,
    check_text,
    check_timeout,
    parse_base_url,
)
from ._converter import PayloadError, parse_page
from ._errors import (
    AIOBatchesError,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    status_error_class,
)
from ._redact import Redactor
from ._stream import ON_INVALID, BatchStream, FetchedPage, OnInvalid
from ._version import version

logger: Final = logging.getLogger("aiobatches")

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_MAX_RETRIES: Final = 2
DEFAULT_CONNECTION_LIMIT: Final = 100
MAX_PAGE_SIZE: Final = 100
_MAX_REDIRECTS: Final = 10
_JSON_TYPE: Final = re.compile(r"^\s*application/([\w.+-]+\+)?json\s*(;|$)", re.IGNORECASE)


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


@frozen
class _Failure:
    """An attempt that yielded no page: the error to raise, and whether to try again."""

    error: APIError
    retry: bool
    delay: float | None = None
    """The server's requested delay, if it gave a usable one."""


class Client:
    """An OpenAI API client that lists batches; use it as an async context manager.

    Args:
        api_key: falls back to `OPENAI_API_KEY`; never shown in repr, logs or errors.
        base_url: falls back to `OPENAI_BASE_URL`, then `https://api.openai.com/v1`.
        organization: sent as `OpenAI-Organization`; falls back to `OPENAI_ORG_ID`.
        project: sent as `OpenAI-Project`; falls back to `OPENAI_PROJECT_ID`.
        session: a borrowed `aiohttp.ClientSession`, never closed by the client.
        timeout: seconds per request attempt, or an `aiohttp.ClientTimeout`.
        max_retries: retries per page after the first attempt (0 disables them).
        connection_limit: open connections of the owned session (0: no limit).
        default_headers: extra headers for every request.
        default_query: extra query parameters for every page request.
        proxy: an http(s) proxy URL; by default an owned session follows
            `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        proxy: str | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise AIOBatchesError(
                "No API key: pass api_key=... or set the OPENAI_API_KEY environment variable."
            )
        check_text("api_key", key, secret=True)
        base = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self._setup(
            list_url=parse_base_url("base_url", base) / "batches",
            auth_headers={"Authorization": f"Bearer {key}"},
            secrets=(key,),
            organization=organization or os.environ.get("OPENAI_ORG_ID"),
            project=project or os.environ.get("OPENAI_PROJECT_ID"),
            session=session,
            timeout=timeout,
            max_retries=max_retries,
            connection_limit=connection_limit,
            default_headers=default_headers,
            default_query=default_query,
            proxy=proxy,
        )

    def _setup(
        self,
        *,
        list_url: URL,
        auth_headers: Mapping[str, str],
        secrets: tuple[str, ...],
        organization: str | None = None,
        project: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        connection_limit: int = DEFAULT_CONNECTION_LIMIT,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str] | None = None,
        proxy: str | None = None,
    ) -> None:
        """Validate and store what every kind of client shares."""
        self._timeout = check_timeout(timeout)
        self._max_retries = check_count("max_retries", max_retries)
        self._connection_limit = check_count("connection_limit", connection_limit)
        self._list_url = list_url
        self._origin = list_url.origin()
        self._headers: dict[str, str] = {
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            **auth_headers,
        }
        if organization:
            self._headers["OpenAI-Organization"] = check_text("organization", organization)
        if project:
            self._headers["OpenAI-Project"] = check_text("project", project)
        self._headers.update(check_headers(default_headers))
        self._query: dict[str, str] = dict(default_query or {})
        self._session = session
        self._owns_session = session is None
        self._proxies = Proxies.choose(proxy, owned_session=self._owns_session)
        self._redactor = Redactor((*secrets, *self._proxies.secrets))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _State.UNOPENED
        self._closing = CloseOnce(self._close, f"aiobatches {type(self).__name__} close")
        self._streams: weakref.WeakSet[BatchStream] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._list_url} {self._state.value}>"

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's streams and its owned session; safe to call any number of times.

        Returns only when everything is closed, for every caller; a cancelled
        call leaves the close running, and calling again waits for it.
        """
        self._state = _State.CLOSED
        await self._closing()

    async def _close(self) -> None:
        for stream in list(self._streams):
            if not stream.closed:  # a stream already closing may be the one closing us
                await stream._shutdown("its client was closed")
        session = self._session
        if not self._owns_session or session is None:
            return
        if self._loop is not None and self._loop is not asyncio.get_running_loop():
            # Its connections belong to a loop that has ended: nothing can close them now.
            session.detach()
            return
        await session.close()

    @property
    def is_closed(self) -> bool:
        """Whether `aclose()` was called; a closed client starts no new stream."""
        return self._state is _State.CLOSED

    def list_batches(
        self,
        *,
        limit: int = MAX_PAGE_SIZE,
        after: str | None = None,
        prefetch: int = 1,
        max_items: int | None = None,
        on_invalid: OnInvalid = "raise",
    ) -> BatchStream:
        """Stream the organization's batches, newest first, prefetching `prefetch` pages ahead.

        Args:
            limit: page size sent to the API, 1..100.
            after: resume after this batch id (e.g. a previous stream's `cursor`).
            prefetch: pages fetched ahead while the caller works; 0 is strictly sequential.
            max_items: stop after this many batches, requesting no page beyond them.
            on_invalid: `"raise"` a malformed batch's error after the batches before it,
                or `"skip"` it with a WARNING and record its id in `stream.skipped`.
        """
        return self._open_stream(
            limit=limit, after=after, prefetch=prefetch, max_items=max_items, on_invalid=on_invalid
        )

    def _open_stream(
        self,
        *,
        limit: int,
        after: str | None,
        prefetch: int,
        max_items: int | None,
        on_invalid: OnInvalid = "raise",
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> BatchStream:
        """Validate the stream's arguments and register a new stream with this client."""
        if not _is_int(limit) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be an int from 1 to {MAX_PAGE_SIZE}, got {limit!r}")
        if not _is_int(prefetch) or prefetch < 0:
            raise ValueError(f"prefetch must be an int >= 0, got {prefetch!r}")
        if max_items is not None and (not _is_int(max_items) or max_items < 0):
            raise ValueError(f"max_items must be None or an int >= 0, got {max_items!r}")
        if after is not None and not isinstance(after, str):
            raise TypeError(f"after must be a batch id (str) or None, got {after!r}")
        if on_invalid not in ON_INVALID:
            raise ValueError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
        self._check_open()
        stream = BatchStream(
            self._fetch_page,
            limit=limit,
            after=after,
            prefetch=prefetch,
            max_items=max_items,
            on_invalid=on_invalid,
            on_close=on_close,
        )
        self._streams.add(stream)
        return stream

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise RuntimeError(f"{type(self).__name__} is closed; create a new one to list batches")
        self._state = _State.OPEN

    def _get_session(self, cursor: str | None) -> aiohttp.ClientSession:
        """The session to use, created on first use inside the running loop if we own it."""
        if self._state is _State.CLOSED:
            raise RuntimeError(f"{type(self).__name__} is closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                f"this {type(self).__name__} was first used in another event loop (each"
                " asyncio.run() makes a new one); create one client per event loop"
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

    async def _request_headers(self) -> Mapping[str, str]:
        """Headers for one attempt; a subclass may refresh credentials here."""
        return self._headers

    async def _fetch_page(self, after: str | None, limit: int) -> FetchedPage:
        """Fetch the page after `after`, retrying per policy; errors carry `cursor=after`."""
        query = {**self._query, "limit": str(limit)}
        if after is not None:
            query["after"] = after
        retries = 0
        while True:
            outcome = await self._attempt(query, after, retries)
            if isinstance(outcome, FetchedPage):
                return outcome
            if not outcome.retry or retries >= self._max_retries:
                raise outcome.error
            delay = outcome.delay if outcome.delay is not None else _retry.backoff(retries)
            logger.info(
                "retrying %s after %s (retry %d of %d) in %.3fs",
                self._redactor.text(str(self._list_url)),
                type(outcome.error).__name__,
                retries + 1,
                self._max_retries,
                delay,
            )
            await _retry.sleep(delay)
            retries += 1

    async def _attempt(
        self, query: Mapping[str, str], cursor: str | None, attempt: int
    ) -> FetchedPage | _Failure:
        """One attempt, redirects and credentials included, within one `timeout`."""
        session = self._get_session(cursor)
        try:
            async with asyncio.timeout(self._timeout.total):
                return await self._send(session, query, cursor, attempt)
        except TimeoutError as error:
            return self._transport_failure(error, cursor)

    async def _send(
        self,
        session: aiohttp.ClientSession,
        query: Mapping[str, str],
        cursor: str | None,
        attempt: int,
    ) -> FetchedPage | _Failure:
        """Send, follow same-origin redirects, and read the final response."""
        url = self._list_url
        params: Mapping[str, str] | None = query
        headers = await self._request_headers()
        for _ in range(_MAX_REDIRECTS + 1):
            started = time.perf_counter()
            status: int | None = None
            request_id: str | None = None
            try:
                async with session.get(
                    url,
                    params=params,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    raise_for_status=False,
                    proxy=self._proxies.for_url(url),
                ) as response:
                    status = response.status
                    request_id = response.headers.get("x-request-id")
                    target = self._redirect_target(response)
                    if target is None:
                        return await self._read(response, cursor)
            except (TimeoutError, aiohttp.ClientError) as error:
                return self._transport_failure(error, cursor)
            finally:
                self._log(
                    url=url,
                    params=params,
                    status=status,
                    request_id=request_id,
                    attempt=attempt,
                    started=started,
                )
            url, params = target, None
        too_many = APIConnectionError(f"more than {_MAX_REDIRECTS} redirects", cursor=cursor)
        return _Failure(too_many, retry=False)

    def _redirect_target(self, response: aiohttp.ClientResponse) -> URL | None:
        """Where a same-origin redirect points; None for any response to read as is."""
        location = response.headers.get("Location")
        if response.status not in (301, 302, 303, 307, 308) or location is None:
            return None
        try:
            target = response.url.join(URL(location))
            same_origin = target.origin() == self._origin
        except (ValueError, UnicodeError):  # an unparsable Location is not followed
            return None
        return target if same_origin else None

    async def _read(
        self, response: aiohttp.ClientResponse, cursor: str | None
    ) -> FetchedPage | _Failure:
        """Read a final response within its size bound and turn it into a page or a failure."""
        if response.status >= 300:
            body, _ = await read_bounded(response, MAX_ERROR_BYTES)
            return self._status_failure(response, body, cursor)
        announced = response.content_length
        if (
            announced is not None
            and announced > MAX_PAGE_BYTES
            and not response.headers.get("Content-Encoding")
        ):
            response.close()
            reason = f"its body of {announced:,} bytes is over 16 MiB"
            return self._invalid(response, reason, cursor)
        body, cut = await read_bounded(response, MAX_PAGE_BYTES)
        if cut:
            return self._invalid(response, "its body is over 16 MiB", cursor)
        return self._page_from(response, body, cursor)

    def _page_from(
        self, response: aiohttp.ClientResponse, body: bytes, cursor: str | None
    ) -> FetchedPage | _Failure:
        """Decode and structure a complete page; a malformed batch fails alone, not its page."""
        content_type = response.headers.get("Content-Type")
        if content_type is not None and not _JSON_TYPE.match(content_type):
            reason = f"content type is {content_type!r}, expected application/json"
            return self._invalid(response, reason, cursor)
        try:
            text = text_of(body, response.charset)
            parsed = parse_page(loads(text))
        except (BodyError, PayloadError) as error:
            return self._invalid(response, str(error), cursor)
        if parsed.invalid and (exact := loads_exact(text)) is not None:
            try:  # integers beyond 64 bits, which orjson reads as floats
                parsed = parse_page(exact)
            except PayloadError as error:
                return self._invalid(response, str(error), cursor)
        errors = tuple(
            APIResponseValidationError(
                self._redactor.text(f"invalid page from {self._list_url}: {item.problem}"),
                request_id=response.headers.get("x-request-id"),
                batch_id=item.batch_id,
            )
            for item in parsed.invalid
        )
        return FetchedPage(parsed, errors)

    def _invalid(
        self, response: aiohttp.ClientResponse, reason: str, cursor: str | None
    ) -> _Failure:
        message = self._redactor.text(f"invalid page from {self._list_url}: {reason}")
        error = APIResponseValidationError(
            message,
            status_code=response.status,
            request_id=response.headers.get("x-request-id"),
            cursor=cursor,
        )
        return _Failure(error, retry=False)

    def _status_failure(
        self, response: aiohttp.ClientResponse, body: bytes, cursor: str | None
    ) -> _Failure:
        """The error for a non-success status, and whether the policy retries it."""
        status = response.status
        headers = response.headers
        message = f"{status} {response.reason or ''}".rstrip()
        detail, error_body = error_summary(body, response.charset)
        if 300 <= status < 400:  # a redirect's body only repeats its status
            if "Location" in headers:
                message = f"{message} (a redirect to another origin is not followed)"
        elif detail:
            message = f"{message}: {detail}"
        delay = _retry.server_delay(headers)
        error = status_error_class(status)(
            self._redactor.text(message),
            status_code=status,
            request_id=headers.get("x-request-id"),
            body=self._redactor.value(error_body),
            cursor=cursor,
            retry_after=delay,
        )
        retry = (
            status >= 400
            and _retry.should_retry(status, headers)
            and (delay is None or delay <= _retry.MAX_SERVER_DELAY)
        )
        return _Failure(error, retry=retry, delay=delay)

    def _transport_failure(self, error: BaseException, cursor: str | None) -> _Failure:
        if isinstance(error, TimeoutError):
            failure: APIError = APITimeoutError(
                f"request to {self._list_url} timed out", cursor=cursor
            )
        else:
            reason = self._redactor.text(str(error) or type(error).__name__)
            failure = APIConnectionError(
                f"connection to {self._list_url} failed: {reason}", cursor=cursor
            )
        failure.__cause__ = error
        return _Failure(failure, retry=True)

    def _log(
        self,
        *,
        url: URL,
        params: Mapping[str, str] | None,
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


class ClientOptions(TypedDict, total=False):
    """`Client` keyword arguments that `AzureClient` passes on unchanged."""

    session: aiohttp.ClientSession | None
    timeout: float | aiohttp.ClientTimeout
    max_retries: int
    connection_limit: int
    default_headers: Mapping[str, str] | None
    proxy: str | None


TokenProvider = Callable[[], str | Awaitable[str]]
"""Returns a Microsoft Entra ID (AD) token; called, and awaited if need be, per request."""


class AzureClient(Client):
    """A client for Azure OpenAI: `{endpoint}/openai/batches?api-version=...`.

    Args:
        azure_endpoint: e.g. `https://my-resource.openai.azure.com`; falls back to
            `AZURE_OPENAI_ENDPOINT`.
        api_version: sent on every page; falls back to `OPENAI_API_VERSION`.
        api_key: sent as `api-key`; falls back to `AZURE_OPENAI_API_KEY`.
        azure_ad_token: sent as `Authorization: Bearer`; falls back to `AZURE_OPENAI_AD_TOKEN`.
        azure_ad_token_provider: called (sync or async) for a fresh token on every request.
        organization, project, default_query: as for `Client` (no environment fallback).
        client_kwargs: `Client`'s session, timeout, max_retries, connection_limit,
            default_headers and proxy.

    A token (static or from the provider) wins over an API key, as in the official SDK.
    Streams, errors and retries are exactly `Client`'s.
    """

    def __init__(
        self,
        *,
        azure_endpoint: str | None = None,
        api_version: str | None = None,
        api_key: str | None = None,
        azure_ad_token: str | None = None,
        azure_ad_token_provider: TokenProvider | None = None,
        organization: str | None = None,
        project: str | None = None,
        default_query: Mapping[str, str] | None = None,
        **client_kwargs: Unpack[ClientOptions],
    ) -> None:
        endpoint = azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise AIOBatchesError(
                "No Azure endpoint: pass azure_endpoint=... or set AZURE_OPENAI_ENDPOINT."
            )
        version = api_version or os.environ.get("OPENAI_API_VERSION")
        if not version:
            raise AIOBatchesError("No API version: pass api_version=... or set OPENAI_API_VERSION.")
        explicit = api_key or azure_ad_token or azure_ad_token_provider
        key = api_key or (None if explicit else os.environ.get("AZURE_OPENAI_API_KEY"))
        token = azure_ad_token or (None if explicit else os.environ.get("AZURE_OPENAI_AD_TOKEN"))
        if not (key or token or azure_ad_token_provider):
            raise AIOBatchesError(
                "No Azure credential: pass api_key, azure_ad_token or azure_ad_token_provider,"
                " or set AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN."
            )
        check_text("api_version", version)
        if key:
            check_text("api_key", key, secret=True)
        if token:
            check_text("azure_ad_token", token, secret=True)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if key and not (token or azure_ad_token_provider):
            headers["api-key"] = key
        query = {**(default_query or {}), "api-version": version}
        self._token_provider = azure_ad_token_provider
        self._setup(
            list_url=parse_base_url("azure_endpoint", endpoint) / "openai" / "batches",
            auth_headers=headers,
            secrets=tuple(secret for secret in (key, token) if secret),
            organization=organization,
            project=project,
            default_query=query,
            **client_kwargs,
        )

    async def _request_headers(self) -> Mapping[str, str]:
        """With a token provider, a fresh Bearer token for every attempt."""
        if self._token_provider is None:
            return self._headers
        try:
            token: object = self._token_provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as error:
            reason = self._redactor.text(f"{type(error).__name__}: {error}")
            raise AIOBatchesError(f"azure_ad_token_provider failed: {reason}") from error
        if not isinstance(token, str) or not token:
            raise AIOBatchesError(
                f"azure_ad_token_provider returned {type(token).__name__}"
                f"{' (empty)' if token == '' else ''}; it must return a non-empty str"
            )
        self._redactor.add(token)
        try:
            check_text("the token from azure_ad_token_provider", token, secret=True)
        except ValueError as error:
            raise AIOBatchesError(str(error)) from None
        return {**self._headers, "Authorization": f"Bearer {token}"}


def list_batches(
    *,
    limit: int = MAX_PAGE_SIZE,
    after: str | None = None,
    prefetch: int = 1,
    max_items: int | None = None,
    api_key: str | None = None,
    base_url: str | None = None,
    organization: str | None = None,
    project: str | None = None,
    session: aiohttp.ClientSession | None = None,
    timeout: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    connection_limit: int = DEFAULT_CONNECTION_LIMIT,
    default_headers: Mapping[str, str] | None = None,
    default_query: Mapping[str, str] | None = None,
    proxy: str | None = None,
    on_invalid: OnInvalid = "raise",
) -> BatchStream:
    """One-shot stream: a `Client` made from these arguments lives exactly as long as the stream.

    Takes `Client`'s and `Client.list_batches`' keyword arguments. Exhaustion,
    an error, `aclose()` or leaving `async with` closes the client too, and so
    does the event loop's end when the caller breaks out without `async with`.
    """
    client = Client(
        api_key,
        base_url=base_url,
        organization=organization,
        project=project,
        session=session,
        timeout=timeout,
        max_retries=max_retries,
        connection_limit=connection_limit,
        default_headers=default_headers,
        default_query=default_query,
        proxy=proxy,
    )
    return client._open_stream(
        limit=limit,
        after=after,
        prefetch=prefetch,
        max_items=max_items,
        on_invalid=on_invalid,
        on_close=client.aclose,
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_USER_AGENT: Final = (
    f"aiobatches/{version()} aiohttp/{aiohttp.__version__} Python/{platform.python_version()}"
)
