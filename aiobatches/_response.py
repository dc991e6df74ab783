"""Turning a read response into a page of batches, or into the error it means.

A success is decoded and read item by item, so a malformed batch fails
alone; a non-success becomes the status error named as in the official SDK,
with the retry policy's verdict. Every message is redacted.
"""

from __future__ import annotations

import re
from typing import Final, Generic, Protocol

from attrs import frozen
from yarl import URL

from . import _retry
from ._body import BodyError, error_summary, loads, loads_exact, text_of
from ._converter import ParsedPage, PayloadError, parse_page
from ._errors import APIResponseValidationError, status_error_class
from ._models import B
from ._redact import Redactor
from ._retry import Failure
from ._transport import Response

_JSON_TYPE: Final = re.compile(r"^\s*application/([\w.+-]+\+)?json\s*(;|$)", re.IGNORECASE)


@frozen
class FetchedPage(Generic[B]):
    """A page as the client read it: its items, the error to raise for each invalid one,
    and the server's polling hint."""

    parsed: ParsedPage[B]
    errors: tuple[APIResponseValidationError, ...]
    """One per `parsed.invalid`, in the same order."""
    poll_after: float | None = None
    """Seconds the server asked pollers to wait (`openai-poll-after-ms`), if it did."""


@frozen
class Retrieved(Generic[B]):
    """One batch as `GET /batches/{id}` returned it, with the server's polling hint."""

    batch: B
    poll_after: float | None


def page_or_failure(
    response: Response, *, url: URL, cursor: str | None, redactor: Redactor, model: type[B]
) -> FetchedPage[B] | Failure:
    """The page a final response holds, or the failure it stands for."""
    if response.status >= 300:
        return _status_failure(response, cursor, redactor)
    failed = _invalid(response, url, cursor, redactor)
    try:
        text = _text(response)
        parsed = parse_page(loads(text), model)
        if parsed.invalid and (exact := loads_exact(text)) is not None:
            parsed = parse_page(exact, model)  # integers beyond 64 bits, read as floats
    except (BodyError, PayloadError) as error:
        return failed(str(error))
    errors = tuple(
        APIResponseValidationError(
            redactor.text(f"invalid page from {url}: {item.problem}"),
            request_id=response.request_id,
            batch_id=item.batch_id,
        )
        for item in parsed.invalid
    )
    return FetchedPage(parsed, errors, _retry.poll_after(response.headers))


def batch_or_failure(
    response: Response, *, url: URL, batch_id: str, redactor: Redactor, model: type[B]
) -> Retrieved[B] | Failure:
    """The batch a final response to `GET /batches/{batch_id}` holds, or the failure it
    stands for; a batch with another id is a failure too, never a silent substitute."""
    if response.status >= 300:
        return _status_failure(response, None, redactor)
    failed = _invalid(response, url, None, redactor)
    try:
        text = _text(response)
        payload = loads(text)
        if not isinstance(payload, dict):
            return failed("the body is not a batch object")
        parsed = parse_page({"data": [payload]}, model)
        if parsed.invalid and (exact := loads_exact(text)) is not None:
            parsed = parse_page({"data": [exact]}, model)
    except (BodyError, PayloadError) as error:
        return failed(str(error))
    if parsed.invalid:
        return failed(parsed.invalid[0].problem.replace(" @ data[0]", " @ batch"), batch_id)
    batch = parsed.batches[0]
    if batch.id != batch_id:
        return failed(f"the answer is batch {batch.id!r}, not the one asked for")
    return Retrieved(batch, _retry.poll_after(response.headers))


def _text(response: Response) -> bytes | str:
    """The body as JSON text, or `BodyError` for a body too large or not JSON at all."""
    if response.over_limit:
        raise BodyError("its body is over 16 MiB")
    content_type = response.headers.get("Content-Type")
    if content_type is not None and not _JSON_TYPE.match(content_type):
        raise BodyError(f"content type is {content_type!r}, expected application/json")
    return text_of(response.body, response.charset)


class _Failed(Protocol):
    """The failure for a reason, naming the malformed batch when there is one."""

    def __call__(self, reason: str, batch_id: str | None = None) -> Failure: ...


def _invalid(response: Response, url: URL, cursor: str | None, redactor: Redactor) -> _Failed:
    """Builds the failure for a success response that holds no valid answer; `batch_id`
    names the batch when the answer is that batch, malformed."""

    def failed(reason: str, batch_id: str | None = None) -> Failure:
        error = APIResponseValidationError(
            redactor.text(f"invalid response from {url}: {reason}"),
            status_code=response.status,
            request_id=response.request_id,
            cursor=cursor,
            batch_id=batch_id,
        )
        return Failure(error, retry=False)

    return failed


def _status_failure(response: Response, cursor: str | None, redactor: Redactor) -> Failure:
    """The error for a non-success status, and whether the retry policy tries again."""
    status, headers = response.status, response.headers
    message = f"{status} {response.reason or ''}".rstrip()
    detail, body = error_summary(response.body, response.charset)
    if 300 <= status < 400:  # a redirect's body only repeats its status
        if "Location" in headers:
            message = f"{message} (a redirect to another origin is not followed)"
    elif detail:
        message = f"{message}: {detail}"
    delay = _retry.server_delay(headers)
    error = status_error_class(status)(
        redactor.text(message),
        status_code=status,
        request_id=response.request_id,
        body=redactor.value(body),
        cursor=cursor,
        retry_after=delay,
    )
    retry = status >= 400 and _retry.should_retry(status, headers)
    return Failure(error, retry=retry, delay=delay)
