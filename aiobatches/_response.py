"""Turning a read response into a page of batches, or into the error it means.

A success is decoded and read item by item, so a malformed batch fails
alone; a non-success becomes the status error named as in the official SDK,
with the retry policy's verdict. Every message is redacted.
"""

from __future__ import annotations

import re
from typing import Final

from yarl import URL

from . import _retry
from ._body import BodyError, error_summary, loads, loads_exact, text_of
from ._converter import PayloadError, parse_page
from ._errors import APIResponseValidationError, status_error_class
from ._redact import Redactor
from ._retry import Failure
from ._stream import FetchedPage
from ._transport import Response

_JSON_TYPE: Final = re.compile(r"^\s*application/([\w.+-]+\+)?json\s*(;|$)", re.IGNORECASE)


def page_or_failure(
    response: Response, *, url: URL, cursor: str | None, redactor: Redactor
) -> FetchedPage | Failure:
    """The page a final response holds, or the failure it stands for."""
    if response.status >= 300:
        return _status_failure(response, cursor, redactor)

    def invalid(reason: str) -> Failure:
        message = redactor.text(f"invalid page from {url}: {reason}")
        error = APIResponseValidationError(
            message, status_code=response.status, request_id=response.request_id, cursor=cursor
        )
        return Failure(error, retry=False)

    if response.over_limit:
        return invalid("its body is over 16 MiB")
    content_type = response.headers.get("Content-Type")
    if content_type is not None and not _JSON_TYPE.match(content_type):
        return invalid(f"content type is {content_type!r}, expected application/json")
    try:
        text = text_of(response.body, response.charset)
        parsed = parse_page(loads(text))
        if parsed.invalid and (exact := loads_exact(text)) is not None:
            parsed = parse_page(exact)  # integers beyond 64 bits, which orjson reads as floats
    except (BodyError, PayloadError) as error:
        return invalid(str(error))
    errors = tuple(
        APIResponseValidationError(
            redactor.text(f"invalid page from {url}: {item.problem}"),
            request_id=response.request_id,
            batch_id=item.batch_id,
        )
        for item in parsed.invalid
    )
    return FetchedPage(parsed, errors)


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
    retry = (
        status >= 400
        and _retry.should_retry(status, headers)
        and (delay is None or delay <= _retry.MAX_SERVER_DELAY)
    )
    return Failure(error, retry=retry, delay=delay)
