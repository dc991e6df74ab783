"""The client: configuration, session ownership, and one page request with retries.

Everything that touches HTTP lives here; pagination and prefetch live in
`_stream`. A client is unopened, open or closed; a borrowed session is never
closed by us, an owned one always is.
"""

from __future__ import annotations

import enum
import logging
import os
import platform
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final, NoReturn, Self, TypedDict, Unpack

import aiohttp
import orjson
from yarl import URL

from . import _retry
from ._converter import PayloadError, structure_page
from ._errors import (
    AIOBatchesError,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APITimeoutError,
    status_error_class,
)
from ._models import BatchPage
from ._stream import BatchStream
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


class _Retryable(Exception):  # noqa: N818 - a signal inside the retry loop, never raised out
    """A failed attempt worth another try; carries the error to raise if none is left."""

    def __init__(self, error: APIError, delay: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.delay = delay


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
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise AIOBatchesError(
                "No API key: pass api_key=... or set the OPENAI_API_KEY environment variable."
            )
        base = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self._setup(
            list_url=_parse_base_url(base) / "batches",
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
    ) -> None:
        """Validate and store what every kind of client shares."""
        if isinstance(timeout, aiohttp.ClientTimeout):
            self._timeout = timeout
        elif _is_number(timeout) and timeout > 0:
            self._timeout = aiohttp.ClientTimeout(total=float(timeout))
        else:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not _is_int(max_retries) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if not _is_int(connection_limit) or connection_limit < 0:
            raise ValueError(f"connection_limit must be an int >= 0, got {connection_limit!r}")
        self._list_url = list_url
        self._origin = list_url.origin()
        self._secrets = tuple(secret for secret in secrets if secret)
        self._headers: dict[str, str] = {
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            **auth_headers,
        }
        if organization:
            self._headers["OpenAI-Organization"] = organization
        if project:
            self._headers["OpenAI-Project"] = project
        self._headers.update(default_headers or {})
        self._query: dict[str, str] = dict(default_query or {})
        self._max_retries = max_retries
        self._connection_limit = connection_limit
        self._session = session
        self._owns_session = session is None
        self._state = _State.UNOPENED
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
        """Close the client's streams and its owned session; safe to call any number of times."""
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        for stream in list(self._streams):
            await stream._shutdown("its client was closed")
        if self._owns_session and self._session is not None:
            await self._session.close()

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
    ) -> BatchStream:
        """Stream the organization's batches, newest first, prefetching `prefetch` pages ahead.

        Args:
            limit: page size sent to the API, 1..100.
            after: resume after this batch id (e.g. a previous stream's `cursor`).
            prefetch: pages fetched ahead while the caller works; 0 is strictly sequential.
            max_items: stop after this many batches, requesting no page beyond them.
        """
        return self._open_stream(limit=limit, after=after, prefetch=prefetch, max_items=max_items)

    def _open_stream(
        self,
        *,
        limit: int,
        after: str | None,
        prefetch: int,
        max_items: int | None,
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
        self._check_open()
        stream = BatchStream(
            self._fetch_page,
            limit=limit,
            after=after,
            prefetch=prefetch,
            max_items=max_items,
            on_close=on_close,
        )
        self._streams.add(stream)
        return stream

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise RuntimeError(f"{type(self).__name__} is closed; create a new one to list batches")
        self._state = _State.OPEN

    def _get_session(self) -> aiohttp.ClientSession:
        """The session to use, created on first use inside the running loop if we own it."""
        if self._state is _State.CLOSED:
            raise RuntimeError(f"{type(self).__name__} is closed")
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
        return self._session

    async def _request_headers(self) -> Mapping[str, str]:
        """Headers for one attempt; a subclass may refresh credentials here."""
        return self._headers

    def _add_secret(self, secret: str) -> None:
        """Redact `secret` from now on (e.g. a freshly issued token)."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    async def _fetch_page(self, after: str | None, limit: int) -> BatchPage:
        """Fetch the page after `after`, retrying per policy; errors carry `cursor=after`."""
        session = self._get_session()
        query = {**self._query, "limit": str(limit)}
        if after is not None:
            query["after"] = after
        retries = 0
        while True:
            try:
                return await self._attempt(session, query, after, retries)
            except _Retryable as failed:
                if retries >= self._max_retries:
                    raise failed.error from failed.error.__cause__
                delay = failed.delay if failed.delay is not None else _retry.backoff(retries)
                logger.info(
                    "retrying %s after %s (retry %d of %d) in %.3fs",
                    self._redact(str(self._list_url)),
                    type(failed.error).__name__,
                    retries + 1,
                    self._max_retries,
                    delay,
                )
                await _retry.sleep(delay)
                retries += 1

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        query: Mapping[str, str],
        cursor: str | None,
        attempt: int,
    ) -> BatchPage:
        """One attempt: send, follow same-origin redirects, read and parse the page."""
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
                ) as response:
                    status = response.status
                    request_id = response.headers.get("x-request-id")
                    target = self._redirect_target(response)
                    if target is None:
                        body = await response.read()
                        return self._page_from(response, body, cursor)
            except (TimeoutError, aiohttp.ClientError) as error:
                raise self._transport_error(error, cursor) from error
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
        raise APIConnectionError(f"more than {_MAX_REDIRECTS} redirects", cursor=cursor)

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

    def _page_from(
        self, response: aiohttp.ClientResponse, body: bytes, cursor: str | None
    ) -> BatchPage:
        """Turn a complete response into a page, or raise the matching error."""
        status = response.status
        request_id = response.headers.get("x-request-id")
        if status >= 300:
            self._raise_status_error(response, body, cursor)

        def invalid(reason: str) -> APIResponseValidationError:
            message = f"invalid page from {self._list_url}: {reason}"
            return APIResponseValidationError(
                self._redact(message), status_code=status, request_id=request_id, cursor=cursor
            )

        content_type = response.headers.get("Content-Type")
        if content_type is not None and not _JSON_TYPE.match(content_type):
            raise invalid(f"content type is {content_type!r}, expected application/json")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise invalid(f"body is not JSON ({error})") from None
        try:
            return structure_page(payload)
        except PayloadError as error:
            raise invalid(str(error)) from None

    def _raise_status_error(
        self, response: aiohttp.ClientResponse, body: bytes, cursor: str | None
    ) -> NoReturn:
        status = response.status
        headers = response.headers
        detail, error_body = _error_detail(body.decode("utf-8", errors="replace"))
        message = f"{status} {response.reason or ''}".rstrip()
        if detail:
            message = f"{message}: {detail}"
        if 300 <= status < 400 and "Location" in headers:
            message = f"{message} (a redirect to another origin is not followed)"
        delay = _retry.server_delay(headers)
        error = status_error_class(status)(
            self._redact(message),
            status_code=status,
            request_id=headers.get("x-request-id"),
            body=self._redact_value(error_body),
            cursor=cursor,
            retry_after=delay,
        )
        if not _retry.should_retry(status, headers) or status < 400:
            raise error
        if delay is not None and delay > _retry.MAX_SERVER_DELAY:
            raise error
        raise _Retryable(error, delay)

    def _transport_error(self, error: BaseException, cursor: str | None) -> _Retryable:
        if isinstance(error, TimeoutError):
            failure: APIError = APITimeoutError(
                f"request to {self._list_url} timed out", cursor=cursor
            )
        else:
            reason = self._redact(str(error) or type(error).__name__)
            failure = APIConnectionError(
                f"connection to {self._list_url} failed: {reason}", cursor=cursor
            )
        failure.__cause__ = error
        return _Retryable(failure)

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
        full_url = self._redact(str(url.update_query(params) if params else url))
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

    def _redact(self, text: str) -> str:
        """Replace every credential of this client in `text`."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _redact_value(self, value: object) -> object:
        """Redact the strings inside a decoded JSON value (escapes are decoded by now)."""
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {self._redact(str(k)): self._redact_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_value(item) for item in value]
        return value


class ClientOptions(TypedDict, total=False):
    """`Client` keyword arguments that `AzureClient` passes on unchanged."""

    session: aiohttp.ClientSession | None
    timeout: float | aiohttp.ClientTimeout
    max_retries: int
    connection_limit: int
    default_headers: Mapping[str, str] | None


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
        client_kwargs: `Client`'s session, timeout, max_retries, connection_limit and
            default_headers.

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
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if key and not (token or azure_ad_token_provider):
            headers["api-key"] = key
        query = {**(default_query or {}), "api-version": version}
        self._token_provider = azure_ad_token_provider
        self._setup(
            list_url=_parse_base_url(endpoint) / "openai" / "batches",
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
        token = self._token_provider()
        if not isinstance(token, str):
            token = await token
        self._add_secret(token)
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
) -> BatchStream:
    """One-shot stream: a `Client` made from these arguments lives exactly as long as the stream.

    Takes `Client`'s and `Client.list_batches`' keyword arguments. Exhaustion,
    an error, `aclose()` or leaving `async with` closes the client too.
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
    )
    return client._open_stream(
        limit=limit, after=after, prefetch=prefetch, max_items=max_items, on_close=client.aclose
    )


def _error_detail(text: str) -> tuple[str, object]:
    """A readable one-line detail and the `body` to expose for an error response."""
    try:
        decoded: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        plain = " ".join(re.sub(r"<[^>]*>", " ", text).split())
        return (plain[:200] + ("..." if len(plain) > 200 else "")), (text or None)
    if isinstance(decoded, dict):
        inner = decoded.get("error", decoded)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"], inner
        return "", inner
    return "", decoded


def _parse_base_url(raw: str) -> URL:
    url = URL(raw.rstrip("/"))
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {raw!r}")
    return url


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_USER_AGENT: Final = (
    f"aiobatches/{version()} aiohttp/{aiohttp.__version__} Python/{platform.python_version()}"
)
