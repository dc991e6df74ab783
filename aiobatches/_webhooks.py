"""Webhooks as OpenAI signs them (the Standard Webhooks scheme): verifying and signing.

`verify_webhook` checks a delivery's headers, timestamp and signature before it
reads the body as an event. Every signature, made or checked, comes from
`signature`, so the fake server's deliveries and `sign_webhook`'s headers are
exactly what `verify_webhook` accepts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Final

import orjson
from attrs import frozen

from ._config import check_batch_id
from ._errors import InvalidWebhookError

MAX_BODY_BYTES: Final = 1024 * 1024
"""A webhook event is a few hundred bytes; anything over 1 MiB is refused unread."""
_HEADERS: Final = ("webhook-id", "webhook-timestamp", "webhook-signature")
_MAX_STAMP_DIGITS: Final = 20
"""More digits than any Unix time in seconds has; spares `int()` a huge string."""


@frozen
class WebhookEvent:
    """A verified webhook event: what happened, and to which batch.

    OpenAI sends every kind of event to the same endpoint; those that are not
    about a batch are returned too, with `batch_id` None.
    """

    id: str
    """The event's own id from the body (`evt_...`), the same on every retry of a delivery."""
    type: str
    """The event type, e.g. `"batch.completed"`, `"batch.failed"`, `"batch.expired"`,
    `"batch.cancelled"`, or a type about something else."""
    created_at: int
    """When the event happened, in Unix seconds."""
    batch_id: str | None
    """The batch the event is about (`data.id`) for `batch.*` types; None for other types."""


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    *,
    secret: str | Sequence[str] | None = None,
    tolerance: float = 300,
) -> WebhookEvent:
    """Verify a delivery as OpenAI signs it and return its event.

    Args:
        body: The raw request body, `bytes` as received (a `str` counts as its UTF-8).
        headers: The request headers, any mapping; names are matched case-insensitively.
        secret: The endpoint's signing secret, or several during a rotation (any one
            verifies); None reads `OPENAI_WEBHOOK_SECRET`. `whsec_...` is base64 after the
            prefix; any other secret is used as its UTF-8 bytes, as openai-python does.
        tolerance: How many seconds the `webhook-timestamp` may differ from now, either way.

    Raises:
        InvalidWebhookError: The delivery is not one to trust (a header missing, a stale
            or future timestamp, no signature matching, a body over 1 MiB or not a JSON
            event). The message never shows a secret or a signature.
        ValueError: No secret is configured, or one is empty or malformed, or the tolerance
            is not a finite number of seconds >= 0. This is the receiver's own
            configuration, not the sender's fault, so it is not an `InvalidWebhookError`:
            a handler that answers those with 400 answers this with 500, which shows up
            in its logs, and OpenAI retries the delivery once the setting is fixed.
    """
    keys = _keys(secret)
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number of seconds >= 0, got {tolerance!r}")
    raw = _bounded_bytes(body)
    msg_id, stamp, signatures = _headers_of(headers)
    _check_timestamp(stamp, tolerance)
    offered = _v1_signatures(signatures)
    expected = [signature(key, msg_id, stamp, raw).encode() for key in keys]
    # Every offered signature is compared with every key, none skipped on a match,
    # so the time taken does not tell which one matched.
    matches = [hmac.compare_digest(want, got) for want in expected for got in offered]
    if not any(matches):
        raise InvalidWebhookError("no signature in webhook-signature matches the secret")
    return _event_of(raw)


def key_of(secret: str) -> bytes:
    """The HMAC key of a secret: base64 after a `whsec_` prefix, else its UTF-8 bytes.

    This is openai-python's reading, non-strict base64 included, so a secret it
    accepts is accepted here. A secret that is empty, or whose `whsec_` part is not
    base64 or decodes to nothing, is a ValueError that does not show the secret.
    """
    if not secret.startswith("whsec_"):
        key = secret.encode()
    else:
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"))
        except binascii.Error:
            raise ValueError("secret: the part after `whsec_` is not valid base64") from None
    if not key:
        what = "the part after `whsec_` decodes to nothing" if secret else "secret is empty"
        raise ValueError(f"{what}: anyone could sign with an empty key")
    return key


def signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of `{msg_id}.{timestamp}.{body}`, without its `v1,` prefix."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def sign_headers(body: bytes, secret: str, *, msg_id: str, timestamp: int) -> dict[str, str]:
    """The three headers of a delivery of `body` with this id and Unix time."""
    stamp = str(timestamp)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + signature(key_of(secret), msg_id, stamp, body),
    }


def sign_webhook(body: bytes | str, secret: str) -> dict[str, str]:
    """Headers that sign `body` as OpenAI would, for a test's own request to a receiver.

    A fresh `msg_...` id and the real current time, as receivers check the
    timestamp against their clock; `body` as `bytes`, or `str` sent as UTF-8.
    """
    raw = body.encode() if isinstance(body, str) else body
    msg_id = "msg_" + secrets.token_hex(12)
    return sign_headers(raw, secret, msg_id=msg_id, timestamp=int(time.time()))


def _keys(secret: str | Sequence[str] | None) -> list[bytes]:
    """The HMAC keys of the secret argument, else of `OPENAI_WEBHOOK_SECRET`."""
    if secret is None:
        secret = os.environ.get("OPENAI_WEBHOOK_SECRET")
        if not secret:
            raise ValueError(
                "No webhook secret: pass secret=... or set the OPENAI_WEBHOOK_SECRET"
                " environment variable."
            )
    given = [secret] if isinstance(secret, str) else list(secret)
    if not given:
        raise ValueError("secret: an empty sequence of secrets verifies nothing")
    if not all(isinstance(one, str) for one in given):
        raise ValueError("secret must be a str or a sequence of str")
    return [key_of(one) for one in given]


def _bounded_bytes(body: bytes | str) -> bytes:
    """The body as bytes, refused before any other work when over `MAX_BODY_BYTES`."""
    # A str has at most as many characters as its UTF-8 has bytes: one too long is
    # refused before it is encoded.
    if len(body) > MAX_BODY_BYTES:
        raise InvalidWebhookError(f"the body is over {MAX_BODY_BYTES} bytes")
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidWebhookError(f"the body is over {MAX_BODY_BYTES} bytes")
    return raw


def _headers_of(headers: Mapping[str, str]) -> tuple[str, str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature`, whatever their case."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _HEADERS:
            found.setdefault(lowered, value)
    missing = [name for name in _HEADERS if not found.get(name)]
    if missing:
        raise InvalidWebhookError(f"missing or empty header: {', '.join(missing)}")
    return found["webhook-id"], found["webhook-timestamp"], found["webhook-signature"]


def _check_timestamp(stamp: str, tolerance: float) -> None:
    """Refuse a timestamp that is not whole Unix seconds, or is too far from now."""
    # `int()` would also take signs, spaces, underscores and non-ASCII digits.
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_STAMP_DIGITS):
        raise InvalidWebhookError("webhook-timestamp is not a whole number of Unix seconds")
    # Whole seconds on both sides, as openai-python compares them, so a delivery
    # at the edge of the tolerance is judged alike by both.
    age = int(time.time()) - int(stamp)
    if age > tolerance:
        raise InvalidWebhookError(
            f"webhook-timestamp is {age} s old, beyond the tolerance of {tolerance:g} s"
        )
    if -age > tolerance:
        raise InvalidWebhookError(
            f"webhook-timestamp is {-age} s in the future, beyond the tolerance of {tolerance:g} s"
        )


def _v1_signatures(header: str) -> list[bytes]:
    """The `v1` signatures of a `webhook-signature` header; other versions are ignored."""
    offered: list[bytes] = []
    for part in header.split():
        version, comma, value = part.partition(",")
        if not comma or not value:
            raise InvalidWebhookError(
                "webhook-signature is malformed: each signature is `<version>,<base64>`"
            )
        if version == "v1":
            offered.append(value.encode())
    if not offered:
        raise InvalidWebhookError("webhook-signature holds no v1 signature")
    return offered


def _event_of(raw: bytes) -> WebhookEvent:
    """The event a verified body holds; one that is not a JSON event is refused."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidWebhookError("the body is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidWebhookError("the body is not a JSON object")
    event_id, kind, created, data = (event.get(key) for key in ("id", "type", "created_at", "data"))
    if not isinstance(event_id, str) or not isinstance(kind, str):
        raise InvalidWebhookError("the event has no string `id` and `type`")
    if not isinstance(created, int) or isinstance(created, bool):
        raise InvalidWebhookError(f"the event {event_id} has no integer `created_at`")
    if not isinstance(data, dict):
        raise InvalidWebhookError(f"the event {event_id} has no `data` object")
    batch_id = None
    if kind.startswith("batch."):
        batch_id = data.get("id")
        try:
            check_batch_id("data.id", batch_id)  # what watch.notify takes, asked of it
        except (TypeError, ValueError):
            raise InvalidWebhookError(
                f"the {kind} event {event_id} has no batch id in `data.id`"
            ) from None
    return WebhookEvent(id=event_id, type=kind, created_at=created, batch_id=batch_id)
