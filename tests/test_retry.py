"""The retry policy's decisions: which statuses, how long to wait, and the testing switch."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest
from _helpers import SERVER_DELAYS, UNUSABLE_SERVER_DELAYS

from aiobatches import _retry
from aiobatches.testing import recorded_sleeps

NOW = 1_800_000_000.0


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses(status: int) -> None:
    """408, 409, 429 and every 5xx are retried."""
    assert _retry.should_retry(status, {})


@pytest.mark.parametrize("status", [300, 400, 401, 403, 404, 422, 451])
def test_other_statuses_are_final(status: int) -> None:
    """Other client errors are not retried."""
    assert not _retry.should_retry(status, {})


def test_x_should_retry_overrides_the_status_rule() -> None:
    """`x-should-retry` forces the decision either way; other values are ignored."""
    assert _retry.should_retry(400, {"x-should-retry": "true"})
    assert _retry.should_retry(400, {"x-should-retry": " TRUE "})
    assert not _retry.should_retry(503, {"x-should-retry": "false"})
    assert _retry.should_retry(503, {"x-should-retry": "maybe"})
    assert not _retry.should_retry(400, {"x-should-retry": "maybe"})


@pytest.mark.parametrize(
    ("headers", "delay"),
    [*SERVER_DELAYS, ({"retry-after": email.utils.formatdate(NOW + 10, usegmt=True)}, 10.0)],
    ids=repr,
)
def test_server_delay_is_read(headers: dict[str, str], delay: float) -> None:
    """`retry-after-ms` wins, then `retry-after` as seconds or an HTTP date."""
    assert _retry.server_delay(headers, now=NOW) == pytest.approx(delay)


@pytest.mark.parametrize(
    "headers",
    [*UNUSABLE_SERVER_DELAYS, {"retry-after": email.utils.formatdate(NOW - 60, usegmt=True)}],
    ids=repr,
)
def test_unusable_server_delays_count_as_absent(headers: dict[str, str]) -> None:
    """Non-finite, non-positive, unparsable and past values leave the delay to backoff."""
    assert _retry.server_delay(headers, now=NOW) is None


def test_unusable_ms_falls_back_to_seconds() -> None:
    """A broken `retry-after-ms` does not hide a good `retry-after`."""
    assert _retry.server_delay({"retry-after-ms": "nan", "retry-after": "3"}, now=NOW) == 3.0


@pytest.mark.parametrize(("retries", "base"), [(0, 0.5), (1, 1.0), (2, 2.0), (4, 8.0), (9, 8.0)])
def test_backoff_doubles_up_to_eight_seconds_less_jitter(retries: int, base: float) -> None:
    """`min(0.5 * 2**n, 8)` with no jitter, and at most 25% less with full jitter."""
    assert _retry.backoff(retries, jitter=0.0) == base
    assert _retry.backoff(retries, jitter=1.0) == base * 0.75
    assert base * 0.75 <= _retry.backoff(retries) <= base


async def test_recorded_sleeps_record_instead_of_waiting() -> None:
    """Inside recorded_sleeps, retry sleeps are noted and return at once; outside, they wait."""
    with recorded_sleeps() as delays:
        await _retry.sleep(3600)
        await asyncio.create_task(_retry.sleep(7))
    assert delays == [3600, 7]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await _retry.sleep(10)


def test_zoneless_http_date_is_utc_not_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `-0000` date 30 s ahead means 30 s whatever the machine's time zone."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        date = email.utils.formatdate(NOW + 30, usegmt=True).replace("GMT", "-0000")
        assert _retry.server_delay({"retry-after": date}, now=NOW) == pytest.approx(30)
    finally:
        monkeypatch.undo()
        time.tzset()
