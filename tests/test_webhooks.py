"""Verifying webhooks as OpenAI signs them, and signing them for tests, with other code."""

from __future__ import annotations

import datetime
import hmac
import time
import types
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

import openai
import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from standardwebhooks.webhooks import Webhook
from starlette.datastructures import Headers

import aiobatches
from aiobatches import _webhooks
from aiobatches.testing import sign_webhook

SECRET: Final = "whsec_c2VjcmV0LWtleS1vZi10aGlzLXRlc3QtZW5kcG9pbnQ="
"""A secret as OpenAI hands it out: `whsec_` and base64."""
OLD_SECRET: Final = "whsec_cmV0aXJlZC1zZWNyZXQtb2YtdGhlLWVuZHBvaW50"
"""The secret a rotation retires."""
BATCH_ID: Final = "batch_6853419ba3a08190ae66db6da3e6a8f4"
EVENT: Final = {
    "id": "evt_685343a1381c819085d44c354e1b330e",
    "type": "batch.completed",
    "created_at": 1750287018,
    "object": "event",
    "data": {"id": BATCH_ID},
}
"""A `batch.completed` event as OpenAI's documentation shows one."""
BODY: Final = orjson.dumps(EVENT)


def event_body(**changes: Any) -> bytes:
    """The JSON of `EVENT` with some keys changed (None removes a key)."""
    event = {**EVENT, **changes}
    return orjson.dumps({key: value for key, value in event.items() if value is not None})


def signed(body: bytes, *, secret: str = SECRET, age: int = 0) -> dict[str, str]:
    """Headers signing `body` with a fresh id, dated `age` seconds before now."""
    return _webhooks.sign_headers(
        body, secret, msg_id="msg_2yKcDo2kcSqzX7YUrC4G3xbhtqE", timestamp=int(time.time()) - age
    )


def refused(body: bytes | str, headers: Mapping[str, str], **kwargs: Any) -> str:
    """The message of the InvalidWebhookError a delivery raises, checked to show no secret
    (whole, or its base64 part) and no signature the delivery carries."""
    with pytest.raises(aiobatches.InvalidWebhookError) as caught:
        aiobatches.verify_webhook(body, headers, **{"secret": SECRET, **kwargs})
    message = str(caught.value)
    offered = {
        part.partition(",")[2]
        for name, value in headers.items()
        if name.lower() == "webhook-signature"
        for part in value.split()
    }
    for hidden in {SECRET, SECRET.removeprefix("whsec_"), *offered} - {""}:
        assert hidden not in message
        assert hidden not in repr(caught.value.args)
    return message


def test_a_signed_batch_event_verifies() -> None:
    """A delivery signed with the endpoint's secret yields its event, with the batch's id."""
    event = aiobatches.verify_webhook(BODY, signed(BODY), secret=SECRET)
    assert event == aiobatches.WebhookEvent(
        id="evt_685343a1381c819085d44c354e1b330e",
        type="batch.completed",
        created_at=1750287018,
        batch_id=BATCH_ID,
    )


def test_a_str_body_verifies_as_its_utf8() -> None:
    """The body may be given as text; its UTF-8 bytes are what was signed."""
    body = event_body(data={"id": "batch_é"})
    event = aiobatches.verify_webhook(body.decode(), signed(body), secret=SECRET)
    assert event.batch_id == "batch_é"


@pytest.mark.parametrize(
    "kind", ["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]
)
def test_every_batch_event_type_names_its_batch(kind: str) -> None:
    """Each of the four batch events carries the batch id of its `data`."""
    body = event_body(type=kind)
    assert aiobatches.verify_webhook(body, signed(body), secret=SECRET).batch_id == BATCH_ID


@pytest.mark.parametrize(
    "kind", ["response.completed", "eval.run.succeeded", "fine_tuning.job.failed", "batches"]
)
def test_other_event_types_are_accepted_without_a_batch_id(kind: str) -> None:
    """Events about something else (OpenAI sends them to the same endpoint) verify, with
    `batch_id` None, whatever their `data` holds."""
    body = event_body(type=kind, data={"id": "resp_abc123"})
    event = aiobatches.verify_webhook(body, signed(body), secret=SECRET)
    assert (event.type, event.batch_id) == (kind, None)


@pytest.mark.parametrize(
    "names",
    [
        ("Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"),
        ("WEBHOOK-ID", "webhook-TIMESTAMP", "wEbHoOk-SiGnAtUrE"),
    ],
)
def test_headers_are_found_in_a_dict_whatever_their_case(names: tuple[str, str, str]) -> None:
    """A plain dict may spell the three header names in any case."""
    headers = dict(zip(names, signed(BODY).values(), strict=True))
    assert aiobatches.verify_webhook(BODY, headers, secret=SECRET).id == EVENT["id"]


def test_aiohttp_and_starlette_headers_are_read_as_they_come() -> None:
    """aiohttp's `CIMultiDictProxy` (with a header name's own case and other headers around)
    and Starlette's `Headers` are read as given."""
    sent = [("Content-Type", "application/json"), *signed(BODY).items(), ("User-Agent", "OpenAI")]
    aiohttp_headers = CIMultiDictProxy(CIMultiDict((name.title(), v) for name, v in sent))
    starlette_headers = Headers(raw=[(name.lower().encode(), v.encode()) for name, v in sent])
    for headers in (aiohttp_headers, starlette_headers):
        assert aiobatches.verify_webhook(BODY, headers, secret=SECRET).id == EVENT["id"]


def test_a_repeated_header_counts_as_the_mapping_reads_it_first() -> None:
    """Of a header sent twice, the first value counts, as `headers.get` in aiohttp and
    Starlette reads it; a second one neither spoils nor replaces it."""
    good = signed(BODY)

    def twice(first: str, second: str) -> CIMultiDictProxy[str]:
        headers = CIMultiDict(good)
        headers["webhook-signature"] = first
        headers.add("Webhook-Signature", second)
        return CIMultiDictProxy(headers)

    twice_good_first = twice(good["webhook-signature"], "v1")
    assert aiobatches.verify_webhook(BODY, twice_good_first, secret=SECRET).id == EVENT["id"]
    assert "malformed" in refused(BODY, twice("v1", good["webhook-signature"]))


def test_any_secret_of_a_rotation_verifies() -> None:
    """During a rotation both the old and the new secret verify; a third does not."""
    rotation = [OLD_SECRET, SECRET]
    for secret in rotation:
        headers = signed(BODY, secret=secret)
        assert aiobatches.verify_webhook(BODY, headers, secret=rotation).id == EVENT["id"]
    other = "whsec_" + "b3RoZXItc2VjcmV0"
    refused(BODY, signed(BODY, secret=other), secret=rotation)


def test_one_good_signature_among_several_verifies() -> None:
    """`webhook-signature` may list several signatures (a retired secret's, another
    version's): one that matches suffices, wherever it stands."""
    retired = signed(BODY, secret=OLD_SECRET)
    good = signed(BODY)
    for parts in (
        [retired["webhook-signature"], good["webhook-signature"]],
        [good["webhook-signature"], "v2,c2lnbmVkLXdpdGgtYW5vdGhlci1zY2hlbWU="],
        ["v1a,AAAA", retired["webhook-signature"], good["webhook-signature"]],
    ):
        headers = {**good, "webhook-signature": "  ".join(parts)}
        assert aiobatches.verify_webhook(BODY, headers, secret=SECRET).id == EVENT["id"]


def test_signatures_of_other_versions_are_ignored() -> None:
    """A right signature offered under another version than `v1` does not verify."""
    headers = signed(BODY)
    sig = headers["webhook-signature"].removeprefix("v1,")
    message = refused(BODY, {**headers, "webhook-signature": f"v1a,{sig} v2,{sig}"})
    assert "no v1 signature" in message


def test_every_signature_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each offered signature meets `hmac.compare_digest` against each key, even after a match,
    so the time taken does not tell which one matched."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    good = signed(BODY)
    headers = {**good, "webhook-signature": f"{good['webhook-signature']} v1,AAAA"}
    aiobatches.verify_webhook(BODY, headers, secret=[SECRET, OLD_SECRET])
    assert len(compared) == 4


def test_a_signature_of_non_ascii_text_is_no_match() -> None:
    """A signature with characters beyond ASCII is refused as not matching, not a TypeError."""
    headers = {**signed(BODY), "webhook-signature": "v1,sïgnature"}
    assert "no signature" in refused(BODY, headers)


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamps_within_the_tolerance_either_way_verify(
    offset: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timestamp up to `tolerance` seconds before or after now verifies, the edge included."""
    now = 1_796_000_000
    monkeypatch.setattr(_webhooks, "time", types.SimpleNamespace(time=lambda: now + 0.9))
    headers = _webhooks.sign_headers(BODY, SECRET, msg_id="msg_1", timestamp=now + offset)
    assert aiobatches.verify_webhook(BODY, headers, secret=SECRET).id == EVENT["id"]


@pytest.mark.parametrize(
    ("offset", "tolerance", "says"),
    [
        (-301, 300, "301 s old"),
        (301, 300, "301 s in the future"),
        (-11, 10, "old"),
        (11, 10, "future"),
    ],
)
def test_timestamps_beyond_the_tolerance_are_refused(
    offset: int, tolerance: int, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery older or newer than `tolerance` seconds is refused, saying which."""
    now = 1_796_000_000
    monkeypatch.setattr(_webhooks, "time", types.SimpleNamespace(time=lambda: now))
    headers = _webhooks.sign_headers(BODY, SECRET, msg_id="msg_1", timestamp=now + offset)
    assert says in refused(BODY, headers, tolerance=tolerance)


def test_a_zero_tolerance_takes_only_this_second() -> None:
    """`tolerance=0` accepts a delivery stamped this very second, and no other."""
    now = int(time.time())
    for stamp in (now - 5, now + 5):
        refused(
            BODY, _webhooks.sign_headers(BODY, SECRET, msg_id="m", timestamp=stamp), tolerance=0
        )


@pytest.mark.parametrize(
    "stamp",
    ["abc", "1796000000.5", "1.796e9", "+1796000000", " 1796000000", "1_796_000_000",
     "-1796000000", "١٧٩٦٠٠٠٠٠٠", "9" * 5000],
)  # fmt: skip
def test_a_timestamp_that_is_not_whole_seconds_is_refused(stamp: str) -> None:
    """`webhook-timestamp` must be plain ASCII digits: no sign, fraction, space, underscore,
    other script's digits, or thousands of digits."""
    headers = {**signed(BODY), "webhook-timestamp": stamp}
    headers["webhook-signature"] = "v1," + _webhooks.signature(
        _webhooks.key_of(SECRET), headers["webhook-id"], stamp, BODY
    )
    assert "whole number" in refused(BODY, headers)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_each_missing_header_is_refused_by_name(missing: str, how: str) -> None:
    """A delivery without one of the three headers, or with it empty, is refused naming it."""
    headers = signed(BODY)
    if how == "absent":
        del headers[missing]
    else:
        headers[missing] = ""
    assert missing in refused(BODY, headers)


def test_a_tampered_body_or_a_wrong_secret_is_no_match() -> None:
    """A body changed after signing, or a delivery signed with another secret, is refused."""
    assert "no signature" in refused(event_body(data={"id": "batch_other"}), signed(BODY))
    assert "no signature" in refused(BODY, signed(BODY, secret=OLD_SECRET))
    headers = signed(BODY)
    assert "no signature" in refused(BODY, {**headers, "webhook-id": "msg_replayed"})


@pytest.mark.parametrize("header", ["v1", "v1,", ",abc", "v1,abc garbage", "  "])
def test_a_malformed_signature_header_is_refused(header: str) -> None:
    """Each entry of `webhook-signature` must read `<version>,<base64>`."""
    headers = {**signed(BODY), "webhook-signature": header}
    message = refused(BODY, headers)
    assert "malformed" in message or "missing or empty" in message or "no v1" in message


def test_a_body_over_one_mib_is_refused_before_any_hashing_or_parsing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 5 MiB body, as bytes or text, is refused on its size alone: no HMAC, no JSON."""

    def never(*args: object) -> NoReturn:
        raise AssertionError("a body over the limit reached a signature or JSON check")

    class Unencodable(str):
        """Text that fails the test if it is encoded: its size alone must refuse it."""

        def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
            raise AssertionError("a text body over the limit was encoded")

    headers = signed(BODY)
    for body in (b" " * (5 << 20), Unencodable(" " * (5 << 20))):
        monkeypatch.setattr(_webhooks, "signature", never)
        monkeypatch.setattr(_webhooks, "_event_of", never)
        assert "over 1048576 bytes" in refused(body, headers)
    monkeypatch.undo()
    big = signed(b" " * (5 << 20))
    assert "over 1048576 bytes" in refused(b" " * (5 << 20), big)


def test_the_size_limit_is_one_mib_of_utf8() -> None:
    """A body of exactly 1 MiB verifies; one byte more is refused, also when the text is
    under 1 MiB characters but over 1 MiB as UTF-8."""
    padding = _webhooks.MAX_BODY_BYTES - len(BODY) + len(b'""') - len(b',"p":""')
    fits = event_body(p="x" * (padding - 2))
    assert len(fits) == _webhooks.MAX_BODY_BYTES
    assert aiobatches.verify_webhook(fits, signed(fits), secret=SECRET).id == EVENT["id"]
    over = fits[:-1] + b" }"
    refused(over, signed(over))
    wide = event_body(p="é" * (_webhooks.MAX_BODY_BYTES // 2))
    assert len(wide.decode()) <= _webhooks.MAX_BODY_BYTES < len(wide)
    assert "over" in refused(wide.decode(), signed(wide))


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"evt_1"', "not a JSON object"),
        (event_body(id=None), "`id` and `type`"),
        (event_body(id=17), "`id` and `type`"),
        (event_body(type=None), "`id` and `type`"),
        (event_body(created_at=None), "`created_at`"),
        (event_body(created_at="1750287018"), "`created_at`"),
        (event_body(created_at=True), "`created_at`"),
        (event_body(created_at=1750287018.5), "`created_at`"),
        (event_body(data=None), "`data` object"),
        (event_body(data=["batch_abc123"]), "`data` object"),
        (event_body(data={}), "`data.id`"),
        (event_body(data={"id": ""}), "`data.id`"),
        (event_body(data={"id": 42}), "`data.id`"),
        # What watch.notify would refuse: the event's batch must be one it can retrieve.
        (event_body(data={"id": "../files"}), "`data.id`"),
        (event_body(data={"id": ".."}), "`data.id`"),
        (event_body(data={"id": "batch\x00abc"}), "`data.id`"),
    ],
)
def test_a_signed_body_that_is_not_a_json_event_is_refused(body: bytes, says: str) -> None:
    """A correctly signed body must still be a JSON event: string `id` and `type`, integer
    `created_at`, a `data` object, and a batch id in `data.id` for `batch.*` types (one
    `watch.notify` takes: one path segment, no control characters)."""
    assert says in refused(body, signed(body))


def test_the_secret_falls_back_to_openai_webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `secret=`, `OPENAI_WEBHOOK_SECRET` is the secret; an argument overrides it."""
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    assert aiobatches.verify_webhook(BODY, signed(BODY)).id == EVENT["id"]
    refused(BODY, signed(BODY), secret=OLD_SECRET)


@pytest.mark.parametrize("environment", [None, ""])
def test_no_secret_anywhere_is_a_value_error_naming_the_setting(
    environment: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no secret given or set, verifying is a configuration error (ValueError, not
    InvalidWebhookError) that says where the secret goes."""
    if environment is not None:
        monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", environment)
    with pytest.raises(ValueError, match="OPENAI_WEBHOOK_SECRET") as caught:
        aiobatches.verify_webhook(BODY, signed(BODY))
    assert not isinstance(caught.value, aiobatches.InvalidWebhookError)


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("", "empty"),
        ("whsec_", "decodes to nothing"),
        ("whsec_!!!", "decodes to nothing"),  # not base64, and read as openai-python reads it
        ("whsec_A", "not valid base64"),
        ([], "empty sequence"),
        ([SECRET, ""], "empty"),
        ([SECRET.encode()], "a str or a sequence of str"),
        (SECRET.encode(), "a str or a sequence of str"),
    ],
)
def test_an_unusable_secret_is_a_value_error_that_hides_it(secret: Any, says: str) -> None:
    """An empty secret (anyone could sign with it), bad base64 after `whsec_`, or a secret
    that is not text is a ValueError, whose message does not show the secret."""
    with pytest.raises(ValueError, match=says) as caught:
        aiobatches.verify_webhook(BODY, signed(BODY), secret=secret)
    assert not isinstance(caught.value, aiobatches.InvalidWebhookError)
    assert SECRET.removeprefix("whsec_") not in str(caught.value)


def test_a_secret_without_the_prefix_is_its_utf8_bytes() -> None:
    """A secret not starting with `whsec_` is used as its UTF-8 bytes, as openai-python does."""
    plain = "ünprefixed secret"
    headers = _webhooks.sign_headers(BODY, plain, msg_id="m", timestamp=int(time.time()))
    key = plain.encode()
    expected = _webhooks.signature(key, "m", headers["webhook-timestamp"], BODY)
    assert headers["webhook-signature"] == "v1," + expected
    assert aiobatches.verify_webhook(BODY, headers, secret=plain).id == EVENT["id"]


@pytest.mark.parametrize("tolerance", [-1, float("nan"), float("inf")])
def test_a_tolerance_that_is_no_number_of_seconds_is_a_value_error(tolerance: float) -> None:
    """The tolerance must be a finite number of seconds, zero or more."""
    with pytest.raises(ValueError, match="tolerance"):
        aiobatches.verify_webhook(BODY, signed(BODY), secret=SECRET, tolerance=tolerance)


def test_sign_webhook_dates_now_with_a_fresh_id() -> None:
    """`sign_webhook` stamps the real current time and a new `msg_` id on each call, and
    its headers verify, for a body given as bytes or text."""
    body = event_body(data={"id": "batch_é"})
    before = int(time.time())
    first, second = sign_webhook(body, SECRET), sign_webhook(body.decode(), SECRET)
    after = int(time.time())
    assert first["webhook-id"].startswith("msg_")
    assert first["webhook-id"] != second["webhook-id"]
    assert before <= int(first["webhook-timestamp"]) <= after
    assert first["webhook-signature"].startswith("v1,")
    for headers in (first, second):
        assert aiobatches.verify_webhook(body, headers, secret=SECRET).batch_id == "batch_é"


def test_sign_headers_matches_the_standard_webhooks_test_vector() -> None:
    """The signing function gives the signature the Standard Webhooks libraries' own tests
    pin for their example message."""
    headers = _webhooks.sign_headers(
        b'{"test": 2432232314}',
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


SignedBy = Callable[[bytes, str], dict[str, str]]


def standardwebhooks_headers(body: bytes, secret: str) -> dict[str, str]:
    """The headers of a delivery that the `standardwebhooks` package signs."""
    msg_id = "msg_2yKcDo2kcSqzX7YUrC4G3xbhtqE"
    now = datetime.datetime.now(datetime.UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }


@pytest.mark.parametrize("body", [BODY, event_body(type="response.completed")])
def test_standardwebhooks_signatures_verify_here(body: bytes) -> None:
    """What the Standard Webhooks reference library signs, `verify_webhook` accepts."""
    headers = standardwebhooks_headers(body, SECRET)
    assert aiobatches.verify_webhook(body, headers, secret=SECRET).id == EVENT["id"]
    tampered = body.replace(b"evt_", b"evt_x")
    refused(tampered, headers)


def test_standardwebhooks_verifies_what_sign_webhook_signs() -> None:
    """What `sign_webhook` signs, the Standard Webhooks reference library accepts."""
    assert Webhook(SECRET).verify(BODY, sign_webhook(BODY, SECRET)) == EVENT


@pytest.mark.parametrize("secret", [SECRET, "a secret without the whsec_ prefix"])
def test_openai_python_unwraps_what_sign_webhook_signs(secret: str) -> None:
    """openai-python's `webhooks.unwrap` accepts `sign_webhook`'s headers (for both kinds of
    secret) and reads the same batch event; with another secret it refuses them."""
    headers = sign_webhook(BODY, secret)
    with openai.OpenAI(api_key="sk-offline", webhook_secret=secret) as client:
        event = client.webhooks.unwrap(BODY, headers)
        assert isinstance(event, openai.types.webhooks.BatchCompletedWebhookEvent)
        assert (event.id, event.data.id) == (EVENT["id"], BATCH_ID)
        with pytest.raises(openai.InvalidWebhookSignatureError):
            client.webhooks.unwrap(BODY, headers, secret=OLD_SECRET)
    assert aiobatches.verify_webhook(BODY, headers, secret=secret).id == event.id
