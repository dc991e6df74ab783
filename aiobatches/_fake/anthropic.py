"""Anthropic's Message Batches as the fake server speaks them, from the same batches.

`AnthropicDialect` serves `/v1/messages/batches` below a base URL with no `/v1`,
beside OpenAI's (or Azure's) paths, and writes each OpenAI-shaped batch the
population holds as a `message_batch`: its status folded into Anthropic's three,
its requests `processing` until the whole batch ends, its times RFC 3339 with
microseconds that keep the batches of one second in the order they were made.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from typing import Any, Final

from .._body import dumps, loads
from .dialects import Dialect, Refusal
from .living import Page

ID_PREFIX: Final = "msgbatch_"
"""What Anthropic's batch ids begin with; a held `batch_X` is served as `msgbatch_X`."""
RESULTS_URL: Final = "https://api.anthropic.com/v1/messages/batches/{id}/results"
"""Where an ended batch's results lie, as the real API names it."""
KINDS: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
"""The error `type` by status, as Anthropic's errors page lists them; any other 4xx is an
`invalid_request_error`, any other 5xx an `api_error`."""
_STATUSES: Final[Mapping[str, str]] = {
    "validating": "in_progress",
    "in_progress": "in_progress",
    "finalizing": "in_progress",
    "cancelling": "canceling",
}
"""Anthropic's status of each unfinished OpenAI status; every other one has `ended`."""
_ENDED_AT: Final = ("completed_at", "failed_at", "expired_at", "cancelled_at")
"""The OpenAI stamps of a batch's end, one of which a finished batch carries."""
_DAY: Final = datetime.timedelta(days=1)
_EPOCH: Final = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


class AnthropicDialect(Dialect):
    """Anthropic's `/v1/messages/batches`: the key as `x-api-key` or Bearer, an
    `anthropic-version` required, `after_id`/`before_id` and `limit` 1..1000 (20 by
    default), Anthropic's envelope, `message_batch` items and `{"type": "error"}` errors."""

    url_suffix = ""
    list_path = "/v1/messages/batches"
    request_id_header = "request-id"
    poll_after_header = None
    cursor = "after_id"
    before_cursor = "before_id"
    max_limit = 1000

    def check_headers(self, headers: Mapping[str, str]) -> Refusal | None:
        if "anthropic-version" in headers:
            return None
        return Refusal(400, "anthropic-version: header is required")

    def check_auth(self, headers: Mapping[str, str], key: str) -> Refusal | None:
        api_key, bearer = headers.get("x-api-key"), headers.get("Authorization")
        if api_key == key or bearer == f"Bearer {key}":
            return None
        if api_key is not None:
            return Refusal(401, "invalid x-api-key")
        if bearer is not None:
            return Refusal(401, "invalid bearer token")
        return Refusal(401, "x-api-key header is required")

    def held_ids(self, batch_id: str) -> tuple[str, ...]:
        if batch_id.startswith(ID_PREFIX):
            return ("batch_" + batch_id.removeprefix(ID_PREFIX), batch_id)
        # An OpenAI id names no message batch; any other id is served as it is held.
        return () if batch_id.startswith("batch_") else (batch_id,)

    def bad_limit(self, raw: str, limit: int | None) -> Refusal:
        if limit is None:
            message = "Input should be a valid integer, unable to parse string as an integer"
        elif limit < self.min_limit:
            message = f"Input should be greater than or equal to {self.min_limit}"
        else:
            message = f"Input should be less than or equal to {self.max_limit}"
        return Refusal(400, f"limit: {message}", "limit")

    def unknown_cursor(self, batch_id: str, cursor: str | None = None) -> Refusal:
        name = cursor or self.cursor
        return Refusal(400, f"{name}: no message batch with id '{batch_id}' was found", name)

    def no_batch(self, batch_id: str) -> Refusal:
        return Refusal(404, f"Message batch {batch_id} not found.")

    def not_found(self, method: str, path: str) -> Refusal:
        return Refusal(404, "Not Found")

    def injected(self, status: int) -> Refusal:
        message = "Overloaded" if status == 529 else f"Injected fault: {status}."
        return Refusal(status, message, kind=kind_of(status))

    def batch(self, body: bytes, rank: int = 0) -> bytes:
        return dumps(message_batch(loads(body), rank))

    def page(self, page: Page) -> bytes:
        ranks = page.ranks or [0] * len(page.bodies)
        pairs = zip(page.bodies, ranks, strict=True)
        data = [message_batch(loads(body), rank) for body, rank in pairs]
        ids = [item["id"] for item in data]
        return dumps(
            {
                "data": data,
                "has_more": page.has_more,
                "first_id": ids[0] if ids else None,
                "last_id": ids[-1] if ids else None,
            }
        )

    def claiming_more(self) -> bytes:
        return b'{"data":[],"has_more":true,"first_id":null,"last_id":null}'

    def error_body(self, refusal: Refusal, request_id: str | None = None) -> bytes:
        error = {"type": refusal.kind or kind_of(refusal.status), "message": refusal.message}
        return dumps({"type": "error", "error": error, "request_id": request_id})


def served_id(batch_id: str) -> str:
    """The id a held batch is served by: `batch_X` as `msgbatch_X`, any other as it is."""
    if batch_id.startswith("batch_"):
        return ID_PREFIX + batch_id.removeprefix("batch_")
    return batch_id


def kind_of(status: int) -> str:
    """Anthropic's error `type` for a status."""
    return KINDS.get(status, "api_error" if status >= 500 else "invalid_request_error")


def message_batch(batch: Mapping[str, Any], rank: int = 0) -> dict[str, Any]:
    """An OpenAI-shaped batch as Anthropic writes a message batch, `rank` its place among
    the batches created before it in the same second."""
    batch_id = str(batch["id"])
    own_id = served_id(batch_id)
    status = str(batch.get("status", "validating"))
    processing_status = _STATUSES.get(status, "ended")
    ended = processing_status == "ended"
    created = _moment(batch.get("created_at"), within_second(rank, batch_id))
    ended_at = None
    if ended:
        stamp = next((batch[name] for name in _ENDED_AT if batch.get(name) is not None), None)
        ended_at = max(created, _moment(stamp, _micros(batch_id, "ended")))
    cancel = batch.get("cancelling_at")
    canceled_at = None if cancel is None else max(created, _moment(cancel, _micros(batch_id, "c")))
    return {
        "id": own_id,
        "type": "message_batch",
        "processing_status": processing_status,
        "request_counts": request_counts(batch, status),
        "ended_at": _rfc3339(ended_at),
        "created_at": _rfc3339(created),
        "expires_at": _rfc3339(created + _DAY),
        "archived_at": None,
        "cancel_initiated_at": _rfc3339(canceled_at),
        "results_url": RESULTS_URL.format(id=own_id) if ended else None,
    }


def request_counts(batch: Mapping[str, Any], status: str) -> dict[str, int]:
    """Every request `processing` until the batch ends, then each where it ended; a batch
    whose OpenAI record counts none yet (it never started) has a number drawn from its id."""
    counts = batch.get("request_counts") or {}
    total = int(counts.get("total") or 0) or 1 + _micros(str(batch["id"]), "n") % 2_000
    succeeded, errored = int(counts.get("completed") or 0), int(counts.get("failed") or 0)
    rest = max(0, total - succeeded - errored)
    split = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
    if status in _STATUSES:
        split["processing"] = total
    elif status == "failed":
        split["errored"] = total
    else:
        split["succeeded"] = succeeded
        split["errored"] = errored
        left = {"expired": "expired", "cancelled": "canceled"}.get(status, "errored")
        split[left] += rest
    return split


def within_second(rank: int, batch_id: str) -> int:
    """The microsecond of a batch's creation: drawn from its id, within a slot of the
    second that grows later with `rank`, so the batches of one second keep their order.

    The first of a second lies in its first half, the next in the half of what remains,
    and so on; from the tenth on, each takes the next microsecond of the last thousandth.
    """
    if rank < 10:
        low, high = 1_000_000 - (1_000_000 >> rank), 1_000_000 - (1_000_000 >> (rank + 1))
        return low + _micros(batch_id, "created") % (high - low)
    return min(999_999, 1_000_000 - (1_000_000 >> 10) + rank - 10)


def _micros(batch_id: str, salt: str) -> int:
    """A number below a million drawn from a batch's id, one per `salt`."""
    digest = hashlib.blake2b(f"{salt}:{batch_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) % 1_000_000


def _moment(seconds: object, micros: int) -> datetime.datetime:
    """A Unix time in whole seconds (0 when missing), at `micros` into its second."""
    whole = seconds if isinstance(seconds, int) else 0
    return _EPOCH + datetime.timedelta(seconds=whole, microseconds=micros)


def _rfc3339(moment: datetime.datetime | None) -> str | None:
    """A moment as Anthropic writes it: UTC with microseconds and `Z`."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
