"""What tells one batch API from another, as data the one engine is handed: the item and
page models, the cursor's query parameter, the page sizes, and the headers every request
carries. Streams, waits and watches know nothing else of the API they talk to.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Final, Generic

from attrs import frozen

from ._models import B, Batch, MessageBatch


@frozen
class Dialect(Generic[B]):
    """One API's shape: whose items are `model`, listed newest first, continued after the
    last item's id by the `cursor` parameter, `1..max_limit` a page."""

    name: str
    model: type[B]
    cursor: str
    """The query parameter that continues a listing after an id: `after`, `after_id`."""
    max_limit: int
    """The largest page the API serves, which `limit` is checked against everywhere."""
    headers: Mapping[str, str] = types.MappingProxyType({})
    """Headers every request of this API carries, before the client's own."""


OPENAI: Final = Dialect("OpenAI", Batch, cursor="after", max_limit=100)
"""OpenAI's `/v1/batches`."""
AZURE: Final = Dialect("Azure OpenAI", Batch, cursor="after", max_limit=100)
"""Azure OpenAI's batches: OpenAI's shapes (its own variations are read by the same
models), at Azure's paths with its credentials, which `AzureClient` sets up; a watch's
checkpoint of one is no OpenAI account's."""

ANTHROPIC_VERSION: Final = "2023-06-01"
ANTHROPIC: Final = Dialect(
    "Anthropic",
    MessageBatch,
    cursor="after_id",
    max_limit=1000,
    headers={"anthropic-version": ANTHROPIC_VERSION},
)
"""Anthropic's `/v1/messages/batches`: `after_id`, pages of up to 1,000, and the API
version every request names (`default_headers` may name a later one)."""
