"""Stream every batch job you own (OpenAI's, Azure OpenAI's, Anthropic's) with `async for`.

async with aiobatches.Client() as client:
    async for batch in client.list_batches():
        print(batch.id, batch.status)
"""

from __future__ import annotations

from ._anthropic import AnthropicClient
from ._awaiting import BatchWatch
from ._client import AzureClient, Client, list_batches
from ._errors import (
    AIOBatchesError,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidWebhookError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from ._merge import Merged, merge
from ._models import (
    FINISHED_STATUSES,
    Batch,
    BatchError,
    BatchErrors,
    BatchPage,
    BatchRequestCounts,
    BatchStatus,
    BatchUsage,
    InputTokensDetails,
    MessageBatch,
    MessageBatchRequestCounts,
    MessageBatchStatus,
    OutputTokensDetails,
)
from ._stream import BatchStream, PageIterator
from ._watchstate import BatchEvent
from ._webhooks import WebhookEvent, verify_webhook

__all__ = [  # noqa: RUF022 - plain sorted(), which the export test asserts
    "AIOBatchesError",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AnthropicClient",
    "AuthenticationError",
    "AzureClient",
    "BadRequestError",
    "Batch",
    "BatchError",
    "BatchErrors",
    "BatchEvent",
    "BatchPage",
    "BatchRequestCounts",
    "BatchStatus",
    "BatchStream",
    "BatchUsage",
    "BatchWatch",
    "Client",
    "ConflictError",
    "FINISHED_STATUSES",
    "InputTokensDetails",
    "InternalServerError",
    "InvalidWebhookError",
    "Merged",
    "MessageBatch",
    "MessageBatchRequestCounts",
    "MessageBatchStatus",
    "NotFoundError",
    "OutputTokensDetails",
    "PageIterator",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
    "WebhookEvent",
    "list_batches",
    "merge",
    "verify_webhook",
]


def __getattr__(name: str) -> str:
    """Provide `__version__` from the installed metadata, read only when asked for."""
    if name == "__version__":
        from ._version import version  # noqa: PLC0415 - read lazily, as stamina does

        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
