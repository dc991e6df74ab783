"""`AnthropicClient`: Anthropic's Message Batches through the same engine as OpenAI's
batches, told apart only by the `ANTHROPIC` dialect and how the client is set up."""

from __future__ import annotations

from typing import Unpack

from ._auth import KeyHeaderAuth
from ._client import _Client
from ._config import SharedOptions, anthropic_settings, check_options
from ._dialect import ANTHROPIC
from ._models import MessageBatch


class AnthropicClient(_Client[MessageBatch]):
    """An Anthropic API client that lists Message Batches; use it as an async context manager.

    Streams, waits, watches, retries, errors and lifecycles are exactly `Client`'s; the
    items are `MessageBatch`es, pages hold up to 1,000 (`limit`, default 100) and the
    cursor is sent as `after_id`.

    Args:
        api_key: sent as `x-api-key`; falls back to `ANTHROPIC_API_KEY`; never shown.
        base_url: falls back to `ANTHROPIC_BASE_URL`, then `https://api.anthropic.com`
            (without `/v1`, as Anthropic's SDK takes it).
        client_kwargs: `Client`'s other settings (`session`, `timeout`, `max_retries`,
            `connection_limit`, `default_headers`, `default_query`, `proxy`); every request
            sends `anthropic-version: 2023-06-01`, which `default_headers` may replace.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        **client_kwargs: Unpack[SharedOptions],
    ) -> None:
        # Not OpenAI's `organization` or `project`: their headers mean nothing here.
        check_options(type(self).__name__, client_kwargs, SharedOptions.__optional_keys__)
        settings = anthropic_settings(api_key, base_url)
        self._setup(
            dialect=ANTHROPIC,
            list_url=settings.base_url / "v1" / "messages" / "batches",
            auth=KeyHeaderAuth("x-api-key", settings.api_key),
            **client_kwargs,
        )
