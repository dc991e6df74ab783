"""Every exception aiobatches raises, named as in the official OpenAI SDK.

    AIOBatchesError
    ├── InvalidWebhookError
    └── APIError
        ├── APIConnectionError ── APITimeoutError
        ├── APIStatusError
        │   ├── BadRequestError 400        ├── AuthenticationError 401
        │   ├── PermissionDeniedError 403  ├── NotFoundError 404
        │   ├── ConflictError 409          ├── UnprocessableEntityError 422
        │   ├── RateLimitError 429         └── InternalServerError >=500
        └── APIResponseValidationError ── PaginationError

Context is passed as keyword-only attributes; `cursor` is the `after` of the
page that failed, so `list_batches(after=err.cursor)` resumes with nothing lost.
An error a `merge` raises from one of its sources names it in `source`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._models import Batch, MessageBatch


class AIOBatchesError(Exception):
    """Root of everything aiobatches raises; catch this to catch them all."""

    source: str | None = None
    """The name of the `merge` source that raised it; None outside a merge."""


class InvalidWebhookError(AIOBatchesError):
    """A webhook delivery failed verification: a header missing, a timestamp out of
    tolerance, no signature matching, or a body over 1 MiB or not a JSON event.

    Answer it with 400; the message never shows a secret or a signature.
    """


class APIError(AIOBatchesError):
    """A request to the API did not yield a usable page."""

    message: str
    """What went wrong, credentials redacted; also `str(error)`."""
    cursor: str | None
    """The `after` of the page that failed: `list_batches(after=cursor)` resumes there."""
    partial: Sequence[Batch | MessageBatch] | None
    """What `to_list()` had collected when this error stopped it; None elsewhere."""
    retryable: bool
    """Whether the retry policy calls this failure transient (a connection error, 408, 409,
    429, 5xx, or `x-should-retry: true`): trying the request again later may succeed.
    Waits and watches go on after such an error; any other ends them."""

    def __init__(self, message: str, *, cursor: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cursor = cursor
        self.partial = None
        self.retryable = False


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke mid-response."""


class APITimeoutError(APIConnectionError):
    """An attempt took longer than the client's `timeout`."""


class APIStatusError(APIError):
    """The API answered with a non-success status; `body` is its decoded `error` object."""

    status_code: int
    """The HTTP status of the response."""
    request_id: str | None
    """The response's `x-request-id` (`request-id` from Anthropic), which support asks for;
    None if absent."""
    body: object
    """The body's `error` object (or all of its JSON), its text if not JSON, None if empty;
    credentials redacted."""
    code: str | None
    """The error object's `code`, e.g. `"invalid_api_key"`; None if absent."""
    type: str | None
    """The error object's `type`, e.g. `"invalid_request_error"`; None if absent."""
    param: str | None
    """The error object's `param`: the request parameter at fault; None if absent."""
    retry_after: float | None
    """The delay in seconds the server asked for (`retry-after-ms` or `retry-after`); None if
    it asked for none."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: object = None,
        cursor: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, cursor=cursor)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        details: dict[str, Any] = body if isinstance(body, dict) else {}
        self.code = _optional_str(details.get("code"))
        self.type = _optional_str(details.get("type"))
        self.param = _optional_str(details.get("param"))
        self.retry_after = retry_after


class BadRequestError(APIStatusError):
    """400: the request was malformed, e.g. an unknown `after` cursor."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not list this organization's or project's batches."""


class NotFoundError(APIStatusError):
    """404: wrong base URL, or the endpoint is not served there."""


class ConflictError(APIStatusError):
    """409: the server reports a conflicting concurrent change (retried)."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well-formed but could not be processed."""


class RateLimitError(APIStatusError):
    """429: too many requests; `retry_after` holds the server's requested delay if any."""


class InternalServerError(APIStatusError):
    """5xx: the server failed (retried)."""


class APIResponseValidationError(APIError):
    """A successful response whose body is not a valid page of batches.

    When one batch is malformed, `batch_id` names it (None if it has no
    usable id): `after=batch_id` continues past it.
    """

    status_code: int
    """The HTTP status of the response, a success one."""
    request_id: str | None
    """The response's `x-request-id` (`request-id` from Anthropic), which support asks for;
    None if absent."""
    batch_id: str | None
    """The id of the malformed batch, when one batch is at fault and has a usable id."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 200,
        request_id: str | None = None,
        cursor: str | None = None,
        batch_id: str | None = None,
    ) -> None:
        super().__init__(message, cursor=cursor)
        self.status_code = status_code
        self.request_id = request_id
        self.batch_id = batch_id


class PaginationError(APIResponseValidationError):
    """The pages do not chain: a repeated cursor, or `has_more` with no items."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status: int) -> type[APIStatusError]:
    """The most specific error class for an HTTP status."""
    if status >= 500:
        return InternalServerError
    return _STATUS_ERRORS.get(status, APIStatusError)


def _optional_str(value: object) -> str | None:
    """A string field of an error body; numbers (some gateways send numeric codes) as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
