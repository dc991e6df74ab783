"""Where a client's requests go and as whom: the list URL, headers, credentials and
transport of one client, and the retry loop around each of its requests.

A page or a batch is asked for here and read by `_response`; nothing here knows of
streams, waits or a client's lifecycle.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from typing import Final, Generic

import aiohttp
from yarl import URL

from ._auth import Auth
from ._config import (
    DEFAULT_CONNECTION_LIMIT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ClientOptions,
    Proxies,
    check_count,
    check_headers,
    check_text,
    check_timeout,
)
from ._dialect import Dialect
from ._models import B
from ._redact import Redactor
from ._response import FetchedPage, Retrieved, batch_or_failure, page_or_failure
from ._retry import Failure, retrying
from ._transport import Transport
from ._version import version

_USER_AGENT: Final = (
    f"aiobatches/{version()} aiohttp/{aiohttp.__version__} Python/{platform.python_version()}"
)


class Endpoint(Generic[B]):
    """One client's requests: each page or batch asked for, in its API's `dialect`, with
    its retries."""

    def __init__(
        self,
        dialect: Dialect[B],
        list_url: URL,
        auth: Auth | Callable[[Redactor], Auth],
        options: ClientOptions,
    ) -> None:
        self.dialect = dialect
        headers: dict[str, str] = {
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
            **dialect.headers,
        }
        if organization := options.get("organization"):
            headers["OpenAI-Organization"] = check_text("organization", organization)
        if project := options.get("project"):
            headers["OpenAI-Project"] = check_text("project", project)
        extra = check_headers(options.get("default_headers"))
        replaced = {name.lower() for name in extra}  # `Anthropic-Version` replaces the default
        headers = {name: value for name, value in headers.items() if name.lower() not in replaced}
        headers.update(extra)
        session = options.get("session")
        proxies = Proxies.choose(options.get("proxy"), owned_session=session is None)
        self._redactor = Redactor(proxies.secrets)
        self._auth = auth if not callable(auth) else auth(self._redactor)
        for secret in self._auth.secrets:
            self._redactor.add(secret)
        self._headers = headers
        self._query: dict[str, str] = dict(options.get("default_query") or {})
        self._list_url = list_url
        self._list_what = self._redactor.text(str(list_url))  # named in retry logs, per page
        self._max_retries = check_count(
            "max_retries", options.get("max_retries", DEFAULT_MAX_RETRIES)
        )
        self._transport = Transport(
            session=session,
            connection_limit=check_count(
                "connection_limit", options.get("connection_limit", DEFAULT_CONNECTION_LIMIT)
            ),
            timeout=check_timeout(options.get("timeout", DEFAULT_TIMEOUT)),
            proxies=proxies,
            redactor=self._redactor,
        )

    async def fetch_page(self, after: str | None, limit: int) -> FetchedPage[B]:
        """Fetch the page after `after`, retrying per policy; errors carry `cursor=after`."""
        query = {**self._query, "limit": str(limit)}
        if after is not None:
            query[self.dialect.cursor] = after

        async def attempt(retries: int) -> FetchedPage[B] | Failure:
            response = await self._transport.attempt(
                self._list_url, query, self._request_headers, cursor=after, attempt=retries
            )
            if isinstance(response, Failure):
                return response
            return page_or_failure(
                response,
                url=self._list_url,
                cursor=after,
                redactor=self._redactor,
                model=self.dialect.model,
            )

        return await retrying(attempt, max_retries=self._max_retries, what=self._list_what)

    async def retrieve(self, batch_id: str) -> Retrieved[B]:
        """The batch and the server's polling hint, retrying per policy."""
        url = self._list_url / batch_id

        async def attempt(retries: int) -> Retrieved[B] | Failure:
            response = await self._transport.attempt(
                url, self._query, self._request_headers, cursor=None, attempt=retries
            )
            if isinstance(response, Failure):
                return response
            return batch_or_failure(
                response,
                url=url,
                batch_id=batch_id,
                redactor=self._redactor,
                model=self.dialect.model,
            )

        what = self._redactor.text(str(url))
        return await retrying(attempt, max_retries=self._max_retries, what=what)

    async def aclose(self) -> None:
        """Close the owned session, if any."""
        await self._transport.aclose()

    async def _request_headers(self) -> Mapping[str, str]:
        """The headers of one attempt: the client's own, then the credential's."""
        return {**self._headers, **await self._auth.headers()}
