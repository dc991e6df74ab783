"""Credentials: one strategy per kind, each yielding the headers for one request.

A strategy knows its secrets, so everything the client writes can be
redacted; a token provider's fresh tokens are reported as they are issued.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from ._config import check_text
from ._errors import AIOBatchesError

TokenProvider = Callable[[], str | Awaitable[str]]
"""Returns a Microsoft Entra ID (AD) token; called, and awaited if need be, per request."""


class Auth(Protocol):
    """Yields the credential headers of one request."""

    secrets: tuple[str, ...]
    """The credentials known now, to keep out of messages and logs."""

    async def headers(self) -> Mapping[str, str]: ...


class BearerAuth:
    """An API key or a static token, sent as `Authorization: Bearer`."""

    def __init__(self, token: str, setting: str = "api_key") -> None:
        self.secrets: tuple[str, ...] = (check_text(setting, token, secret=True),)
        self._headers = {"Authorization": f"Bearer {token}"}

    async def headers(self) -> Mapping[str, str]:
        return self._headers


class KeyHeaderAuth:
    """A key sent in a header of its own: Azure OpenAI's `api-key`, Anthropic's
    `x-api-key` (no client follows a redirect with it)."""

    def __init__(self, header: str, key: str) -> None:
        self.secrets: tuple[str, ...] = (check_text("api_key", key, secret=True),)
        self._headers = {header: key}

    async def headers(self) -> Mapping[str, str]:
        return self._headers


class TokenProviderAuth:
    """A fresh Bearer token from `provider` for every request; anything else is our error."""

    def __init__(self, provider: TokenProvider, learn: Callable[[str], None]) -> None:
        self.secrets: tuple[str, ...] = ()
        self._provider = provider
        self._learn = learn

    async def headers(self) -> Mapping[str, str]:
        try:
            token: object = self._provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as error:
            raise AIOBatchesError(
                f"azure_ad_token_provider failed with {type(error).__name__}"
            ) from error
        if not isinstance(token, str) or not token:
            empty = " (empty)" if token == "" else ""
            raise AIOBatchesError(
                f"azure_ad_token_provider returned {type(token).__name__}{empty};"
                " it must return a non-empty str"
            )
        self._learn(token)
        try:
            check_text("the token from azure_ad_token_provider", token, secret=True)
        except ValueError as error:
            raise AIOBatchesError(str(error)) from None
        return {"Authorization": f"Bearer {token}"}
