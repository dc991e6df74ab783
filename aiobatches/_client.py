"""The clients: what they list, as whom, and for how long.

`Client` composes the rooms: configuration (`_config`) and credentials
(`_auth`) for its requests (`_endpoint`, each through `_transport`, read by
`_response`, retried by `_retry`), pagination (`_stream`), waits (`_wait`) and
watches (`_awaiting`). A client is unopened, open or closed; its close waits
for every stream and its owned session, for every caller.
"""

from __future__ import annotations

import datetime
import enum
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Generic, Self, Unpack

import aiohttp
from yarl import URL

from ._auth import Auth, BearerAuth, KeyHeaderAuth, TokenProvider, TokenProviderAuth
from ._awaiting import BatchWatch
from ._closing import ClosedByExit, CloseOnce
from ._config import (
    DEFAULT_CONNECTION_LIMIT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT,
    ClientOptions,
    azure_settings,
    check_batch_id,
    check_count,
    check_options,
    openai_settings,
)
from ._dialect import AZURE, OPENAI, Dialect
from ._endpoint import Endpoint
from ._models import B, Batch
from ._polling import Source
from ._redact import Redactor
from ._response import FetchedPage, Retrieved
from ._stream import BatchStream, OnInvalid, check_on_invalid
from ._wait import wait_for_batches

DEFAULT_POLL_INTERVAL: Final = 15.0


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class _Client(ClosedByExit, Generic[B]):
    """What every client is, whatever API it lists: its lifecycle, streams, waits, watches
    and retrievals, in the `Dialect` its subclass sets up."""

    def _setup(
        self,
        *,
        dialect: Dialect[B],
        list_url: URL,
        auth: Auth | Callable[[Redactor], Auth],
        **options: Unpack[ClientOptions],
    ) -> None:
        """Check and store what every kind of client shares."""
        check_options(type(self).__name__, options)
        self._dialect = dialect
        self._endpoint = Endpoint(dialect, list_url, auth, options)
        self._list_url = list_url
        self._state = _State.UNOPENED
        self._closing = CloseOnce(self._close, f"aiobatches {type(self).__name__} close")
        self._streams: weakref.WeakSet[BatchStream[B]] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._list_url} {self._state.value}>"

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

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
        await self._endpoint.aclose()

    @property
    def is_closed(self) -> bool:
        """Whether `aclose()` was called; a closed client starts no new stream."""
        return self._state is _State.CLOSED

    def list_batches(
        self,
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        prefetch: int = 1,
        max_items: int | None = None,
        on_invalid: OnInvalid = "raise",
    ) -> BatchStream[B]:
        """Stream the organization's batches, newest first, prefetching `prefetch` pages ahead.

        Args:
            limit: page size sent to the API: 1..100 (OpenAI, Azure) or 1..1000 (Anthropic).
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
    ) -> BatchStream[B]:
        """Check the stream's arguments and register a new stream with this client."""
        check_count("limit", limit, low=1, high=self._dialect.max_limit)
        check_count("prefetch", prefetch)
        if max_items is not None:
            check_count("max_items", max_items)
        if after is not None and not isinstance(after, str):
            raise TypeError(f"after must be a batch id (str) or None, got {after!r}")
        check_on_invalid(on_invalid)
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

    def _source(self) -> Source:
        """What waits and watches poll through: this client's fetch and retrieval."""
        return Source(self._fetch_page, self._retrieve, self._dialect)

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise RuntimeError(f"{type(self).__name__} is closed; create a new one to list batches")
        self._state = _State.OPEN

    async def _fetch_page(self, after: str | None, limit: int) -> FetchedPage[B]:
        """Fetch the page after `after`, retrying per policy; errors carry `cursor=after`."""
        if self._state is _State.CLOSED:
            raise RuntimeError(f"{type(self).__name__} is closed")
        return await self._endpoint.fetch_page(after, limit)

    async def wait_for_batches(
        self,
        batch_ids: Sequence[str],
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float | None = None,  # noqa: ASYNC109 - the contract's name for the deadline
        on_invalid: OnInvalid = "raise",
    ) -> list[B]:
        """Wait until every batch is finished; returns them in the order given.

        Each poll costs at most as many requests as the cheaper of retrieving
        each unfinished batch and relisting down to the oldest one. Polls are
        `poll_interval` seconds apart, or further when the server asks
        (`openai-poll-after-ms`, capped at 120 s, for the next poll only). A poll
        failing transiently (per the retry policy) is logged and tried again at
        the next one. After `timeout` seconds: `TimeoutError`; an unknown id:
        `NotFoundError` at once. A malformed batch that is not waited for is
        skipped; one that is raises (`"raise"`) or is skipped (`"skip"`).
        """
        if batch_ids:
            self._check_open()
        return await wait_for_batches(
            self._source(),
            batch_ids,
            poll_interval=poll_interval,
            timeout=timeout,
            on_invalid=on_invalid,
        )

    def watch_batches(
        self,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        since: float | datetime.datetime | None = None,
        ids: Iterable[str] | None = None,
        until_finished: bool = False,
        limit: int = DEFAULT_PAGE_SIZE,
        on_invalid: OnInvalid = "raise",
        resume: Mapping[str, Any] | None = None,
    ) -> BatchWatch[B]:
        """Watch batches change: an async iterator of `BatchEvent`, and an async context manager.

        The first cycle lists down to `since` (everything when None) and yields
        `"existing"` events; later cycles list only down to the creation second
        of the oldest batch that was unfinished (past every batch of that second),
        since finished batches never change, and yield `"created"` and
        `"updated"` events. An unfinished batch the listing stops showing is
        retrieved instead (dropped with a WARNING once it is gone).

        Args:
            poll_interval: seconds between cycles (longer if the server asks).
            since: Unix seconds or an aware datetime: only batches created at or after it.
            ids: watch only these batches.
            until_finished: end after the cycle in which no watched batch is unfinished.
            limit: page size of each listing.
            on_invalid: a malformed watched batch raises (`"raise"`) or is skipped with a
                WARNING (`"skip"`); a malformed batch not watched is always skipped.
            resume: a `watch.checkpoint()` to go on from (it carries `since` and `ids`):
                known batches make no `"existing"` event, and what changed meanwhile is
                reported. A malformed checkpoint is a ValueError before any request.
        """
        self._check_open()
        return BatchWatch(
            self._source(),
            poll_interval=poll_interval,
            since=since,
            ids=ids,
            until_finished=until_finished,
            limit=limit,
            on_invalid=on_invalid,
            resume=resume,
        )

    async def retrieve_batch(self, batch_id: str) -> B:
        """One batch by id (`GET /batches/{id}`); an unknown id is `NotFoundError`."""
        return (await self._retrieve(batch_id)).batch

    async def _retrieve(self, batch_id: str) -> Retrieved[B]:
        """The batch and the server's polling hint, retrying per policy."""
        check_batch_id("batch_id", batch_id)
        self._check_open()
        return await self._endpoint.retrieve(batch_id)


class Client(_Client[Batch]):
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
        settings = openai_settings(api_key, base_url, organization, project)
        self._setup(
            dialect=OPENAI,
            list_url=settings.base_url / "batches",
            auth=BearerAuth(settings.api_key),
            organization=settings.organization,
            project=settings.project,
            session=session,
            timeout=timeout,
            max_retries=max_retries,
            connection_limit=connection_limit,
            default_headers=default_headers,
            default_query=default_query,
            proxy=proxy,
        )


class AzureClient(Client):
    """A client for Azure OpenAI: `{endpoint}/openai/batches?api-version=...` with an API
    version, else Azure's v1 API, `{endpoint}/openai/v1/batches`, which takes none.

    Args:
        azure_endpoint: e.g. `https://my-resource.openai.azure.com`, or with a path prefix
            (API Management); falls back to `AZURE_OPENAI_ENDPOINT`. A trailing `/openai`
            is Azure's own path and dropped; a trailing `/openai/v1` is dropped too and
            means the v1 API (`OPENAI_API_VERSION` is then not used; an `api_version`
            argument with it is a ValueError). No query or fragment.
        api_version: sent on every request; falls back to `OPENAI_API_VERSION`. With
            neither, or an empty or blank one, the client uses the v1 API and sends no
            `api-version`.
        api_key: sent as `api-key`; falls back to `AZURE_OPENAI_API_KEY`.
        azure_ad_token: sent as `Authorization: Bearer`; falls back to `AZURE_OPENAI_AD_TOKEN`.
        azure_ad_token_provider: called (sync or async) for a fresh token on every request.
        client_kwargs: `Client`'s other settings (organization and project have no
            environment fallback here).

    A token (static or from the provider) wins over an API key, as in the official SDK.
    Streams, waits, watches, errors and retries are exactly `Client`'s, through either API.
    """

    def __init__(
        self,
        *,
        azure_endpoint: str | None = None,
        api_version: str | None = None,
        api_key: str | None = None,
        azure_ad_token: str | None = None,
        azure_ad_token_provider: TokenProvider | None = None,
        **client_kwargs: Unpack[ClientOptions],
    ) -> None:
        settings = azure_settings(
            azure_endpoint,
            api_version,
            api_key,
            azure_ad_token,
            has_provider=azure_ad_token_provider is not None,
        )
        auth: Auth | Callable[[Redactor], Auth]
        if azure_ad_token_provider is not None:
            provider = azure_ad_token_provider
            auth = lambda redactor: TokenProviderAuth(provider, redactor.learn)  # noqa: E731
        elif settings.ad_token is not None:
            auth = BearerAuth(settings.ad_token, "azure_ad_token")
        else:
            assert settings.api_key is not None  # azure_settings found one credential
            auth = KeyHeaderAuth("api-key", settings.api_key)
        self._api_version = settings.api_version  # None: the v1 API, which takes none
        options: ClientOptions = {**client_kwargs}
        openai = settings.endpoint / "openai"
        if settings.api_version is None:
            list_url = openai / "v1" / "batches"
        else:
            query = {
                **(client_kwargs.get("default_query") or {}),
                "api-version": settings.api_version,
            }
            options["default_query"] = query
            list_url = openai / "batches"
        self._setup(dialect=AZURE, list_url=list_url, auth=auth, **options)

    def __repr__(self) -> str:
        if self._api_version is None:
            return super().__repr__()
        url = self._list_url.with_query({"api-version": self._api_version})
        return f"<{type(self).__name__} {url} {self._state.value}>"


def list_batches(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    after: str | None = None,
    prefetch: int = 1,
    max_items: int | None = None,
    on_invalid: OnInvalid = "raise",
    **options: Unpack[ClientOptions],
) -> BatchStream[Batch]:
    """One-shot stream: a `Client` made from these arguments lives exactly as long as the stream.

    Takes `Client`'s and `Client.list_batches`' keyword arguments. Exhaustion,
    an error, `aclose()` or leaving `async with` closes the client too, and so
    does the event loop's end when the caller breaks out without `async with`.
    """
    client = Client(api_key, base_url=base_url, **options)
    return client._open_stream(
        limit=limit,
        after=after,
        prefetch=prefetch,
        max_items=max_items,
        on_invalid=on_invalid,
        on_close=client.aclose,
    )
