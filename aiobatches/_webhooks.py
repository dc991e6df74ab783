"""Webhooks as OpenAI signs them (the Standard Webhooks scheme): signing a delivery.

Every signature, made or checked, comes from `signature`, so the fake server's
deliveries and `sign_webhook`'s headers are exactly what a receiver verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time


def key_of(secret: str) -> bytes:
    """The HMAC key of a secret: base64 after a `whsec_` prefix, else its UTF-8 bytes.

    This is openai-python's reading, non-strict base64 included, so a secret it
    accepts is accepted here. A `whsec_` secret that is not base64 at all is a
    ValueError that does not show the secret.
    """
    if not secret.startswith("whsec_"):
        return secret.encode()
    try:
        return base64.b64decode(secret.removeprefix("whsec_"))
    except binascii.Error:
        raise ValueError("secret: the part after `whsec_` is not valid base64") from None


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
    return sign_headers(
        raw, secret, msg_id="msg_" + secrets.token_hex(12), timestamp=int(time.time())
    )
