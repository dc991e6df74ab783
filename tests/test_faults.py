"""Hostile servers over real HTTP: retries, timeouts, broken pages, cancellation, secrets."""

from __future__ import annotations

import asyncio
import logging
import traceback

import aiohttp
import pytest
from _helpers import API_KEY, SERVER_DELAYS, UNUSABLE_SERVER_DELAYS, ids, stream_tasks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan, recorded_sleeps

LIMIT = 10
TIMEOUT = 0.4
"""Seconds per attempt: short, so that stalls time out quickly, yet far above what a
loaded machine takes to answer a local page (at 0.2 s a starved loop timed one out)."""

pytestmark = pytest.mark.server(count=50)  # each test assigns its fault plan


def make_client(server: FakeBatchesServer, **kwargs: object) -> aiobatches.Client:
    """A client bound to the server, with a short per-attempt timeout unless told otherwise."""
    kwargs.setdefault("timeout", TIMEOUT)
    return aiobatches.Client(api_key=API_KEY, base_url=server.url, **kwargs)  # type: ignore[arg-type]


async def requests_seen(server: FakeBatchesServer, count: int) -> None:
    """Wait (at most 10 s) until the server has received `count` page requests."""
    async with asyncio.timeout(10):
        while len(server.page_requests) < count:
            await asyncio.sleep(0.01)


BEYOND_BUDGET = {
    # name: (fault, error type, requests spent on the failing page with max_retries=2)
    "500": (Fault.respond(500), aiobatches.InternalServerError, 3),
    "502 html": (
        Fault.respond(502, body="<html><h1>Bad Gateway</h1></html>", content_type="text/html"),
        aiobatches.InternalServerError,
        3,
    ),
    "429": (Fault.respond(429), aiobatches.RateLimitError, 3),
    "408": (Fault.respond(408), aiobatches.APIStatusError, 3),
    "409": (Fault.respond(409), aiobatches.ConflictError, 3),
    "429 retry-after 121": (
        Fault.respond(429, {"retry-after": "121"}),
        aiobatches.RateLimitError,
        1,
    ),
    "400": (Fault.respond(400), aiobatches.BadRequestError, 1),
    "503 x-should-retry false": (
        Fault.respond(503, {"x-should-retry": "false"}),
        aiobatches.InternalServerError,
        1,
    ),
    "400 x-should-retry true": (
        Fault.respond(400, {"x-should-retry": "true"}),
        aiobatches.BadRequestError,
        3,
    ),
    "drop": (Fault.drop(), aiobatches.APIConnectionError, 3),
    "truncate": (Fault.truncate(), aiobatches.APIConnectionError, 3),
    "stall": (Fault.stall(2 * TIMEOUT), aiobatches.APITimeoutError, 3),
    "200 html": (
        Fault.respond(200, body="<html>maintenance</html>", content_type="text/html"),
        aiobatches.APIResponseValidationError,
        1,
    ),
    "200 not json": (
        Fault.respond(200, body='{"data": [', content_type="application/json"),
        aiobatches.APIResponseValidationError,
        1,
    ),
    "200 not an object": (
        Fault.respond(200, body="[1, 2]", content_type="application/json"),
        aiobatches.APIResponseValidationError,
        1,
    ),
    "200 bad item": (
        Fault.respond(
            200,
            body='{"object":"list","data":[{"id":"batch_odd","object":"batch"}],"has_more":false}',
        ),
        aiobatches.APIResponseValidationError,
        1,
    ),
    "cycle": (Fault.cycle(), aiobatches.PaginationError, 1),
    "empty has_more": (Fault.empty_has_more(), aiobatches.PaginationError, 1),
}


@pytest.mark.parametrize("prefetch", [0, 1, 3])
@pytest.mark.parametrize("name", list(BEYOND_BUDGET))
async def test_fault_beyond_budget_raises_its_error_with_cursor(
    server: FakeBatchesServer, name: str, prefetch: int
) -> None:
    """Page 2 failing past the budget: page 1, then its error and cursor; resuming loses nothing."""
    fault, error_type, spent = BEYOND_BUDGET[name]
    server.faults = dict.fromkeys(range(1, 1 + spent), fault)
    got: list[aiobatches.Batch] = []
    with recorded_sleeps() as delays:
        async with make_client(server) as client:
            with pytest.raises(aiobatches.APIError) as caught:
                async for batch in client.list_batches(limit=LIMIT, prefetch=prefetch):
                    got.append(batch)
            error = caught.value
            assert type(error) is error_type
            assert ids(got) == [batch["id"] for batch in server.batches[:LIMIT]]
            assert error.cursor == got[-1].id
            assert len(server.page_requests) == 1 + spent
            assert len(delays) == spent - 1
            assert all(
                request.query.get("after") == error.cursor for request in server.page_requests[1:]
            )
            rest = await client.list_batches(after=error.cursor, limit=LIMIT).to_list()
    assert ids(got) + ids(rest) == [batch["id"] for batch in server.batches]
    assert stream_tasks() == []


@pytest.mark.parametrize(("headers", "delay"), SERVER_DELAYS, ids=repr)
async def test_server_delays_are_honoured(
    server: FakeBatchesServer, headers: dict[str, str], delay: float
) -> None:
    """A usable `retry-after-ms` or `retry-after` on a 503 is the delay before the retry."""
    server.faults = {0: Fault.respond(503, headers)}
    with recorded_sleeps() as delays:
        async with make_client(server) as client:
            assert len(await client.list_batches().to_list()) == 50
    assert delays == [pytest.approx(delay)]


@pytest.mark.parametrize("headers", UNUSABLE_SERVER_DELAYS, ids=repr)
async def test_unusable_server_delays_fall_back_to_backoff(
    server: FakeBatchesServer, headers: dict[str, str]
) -> None:
    """An unusable server delay never escapes as an error: the retry waits the computed backoff."""
    server.faults = {0: Fault.respond(503, headers)}
    with recorded_sleeps() as delays:
        async with make_client(server) as client:
            assert len(await client.list_batches().to_list()) == 50
    [delay] = delays
    assert 0.375 <= delay <= 0.5


async def test_backoff_grows_between_retries(
    server: FakeBatchesServer,
) -> None:
    """Without server delays, successive retries wait about 0.5 s, 1 s, 2 s (less jitter)."""
    server.faults = dict.fromkeys(range(3), Fault.drop())
    with recorded_sleeps() as delays:
        async with make_client(server, max_retries=3) as client:
            assert len(await client.list_batches().to_list()) == 50
    assert all(
        0.75 * base <= delay <= base for delay, base in zip(delays, (0.5, 1, 2), strict=True)
    )


async def test_max_retries_zero_disables_retries(
    server: FakeBatchesServer,
) -> None:
    """With max_retries=0 the first retryable failure is raised."""
    server.faults = {0: Fault.respond(500)}
    async with make_client(server, max_retries=0) as client:
        with pytest.raises(aiobatches.InternalServerError):
            await client.list_batches().to_list()
    assert len(server.page_requests) == 1


async def test_stall_shorter_than_timeout_is_just_slow(
    server: FakeBatchesServer,
) -> None:
    """A stall under the timeout is waited out, without a retry."""
    server.faults = {0: Fault.stall(TIMEOUT / 4)}
    async with make_client(server) as client:
        assert len(await client.list_batches().to_list()) == 50
    assert len(server.page_requests) == 1


async def test_random_fault_plan_replays_identically() -> None:
    """A seeded chance plan picks the same faults on the same requests each run."""
    plan = FaultPlan(rate=0.5, pool=(Fault.respond(500), Fault.drop()), seed=7)
    seen = []
    for _ in range(2):
        async with FakeBatchesServer(count=50, faults=plan) as server:
            with recorded_sleeps():
                async with aiobatches.Client(api_key="k", base_url=server.url, max_retries=9) as c:
                    assert len(await c.list_batches(limit=10).to_list()) == 50
            seen.append(len(server.page_requests))
    assert seen[0] == seen[1] > 5


@pytest.mark.parametrize("prefetch", [0, 1])
async def test_cancel_during_retry_wait_leaves_nothing(
    server: FakeBatchesServer, prefetch: int
) -> None:
    """Cancelling the consumer while a page request waits to retry stops it cleanly."""
    server.faults = {1: Fault.respond(503, {"retry-after": "30"})}
    async with make_client(server) as client:
        stream = client.list_batches(limit=LIMIT, prefetch=prefetch)
        consumer = asyncio.create_task(stream.to_list())
        await requests_seen(server, 2)
        await asyncio.sleep(0.05)
        assert not consumer.done()
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert stream_tasks() == []
    assert len(server.page_requests) == 2


async def test_cancel_while_prefetch_is_stalled_leaves_nothing(
    server: FakeBatchesServer,
) -> None:
    """A consumer cancelled mid-work inside `async with` cancels the stalled prefetch."""
    server.faults = {1: Fault.stall(30)}
    holding = asyncio.Event()

    async def consume() -> None:
        async with (
            make_client(server, timeout=60) as client,
            client.list_batches(limit=LIMIT, prefetch=2) as stream,
        ):
            async for _ in stream:
                holding.set()
                await asyncio.sleep(30)

    consumer = asyncio.create_task(consume())
    async with asyncio.timeout(10):
        await holding.wait()
    await requests_seen(server, 2)
    assert stream_tasks() != []
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert stream_tasks() == []


SECRET = "sk-secret-do-not-leak-4242424242"


async def test_key_never_leaks_into_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Under faults, retries and errors, no log record, message or traceback holds the key."""
    echo = Fault.respond(
        401, body=f'{{"error":{{"message":"bad key {SECRET}","code":"invalid_api_key"}}}}'
    )
    plan = {0: Fault.drop(), 1: Fault.truncate(), 2: Fault.respond(500), 4: echo}
    caplog.set_level(logging.DEBUG)
    async with FakeBatchesServer(count=30, api_key=SECRET, faults=plan) as server:
        with recorded_sleeps():
            async with aiobatches.Client(
                api_key=SECRET, base_url=server.url, default_query={"k": SECRET}, max_retries=3
            ) as client:
                with pytest.raises(aiobatches.AuthenticationError) as caught:
                    await client.list_batches(limit=10).to_list()
                assert SECRET not in repr(client)
    error = caught.value
    texts = [str(error), repr(error), repr(error.body), *traceback.format_exception(error)]
    assert not [text for text in texts if SECRET in text]
    assert caplog.records
    assert not [r for r in caplog.records if SECRET in r.getMessage() or SECRET in str(vars(r))]
    levels = {record.levelno for record in caplog.records}
    assert logging.DEBUG in levels
    assert max(levels) < logging.WARNING


RETRYABLE = st.sampled_from(
    [
        Fault.respond(500),
        Fault.respond(502, body="<html>Bad Gateway</html>", content_type="text/html"),
        Fault.respond(503, {"retry-after-ms": "1"}),
        Fault.respond(504),
        Fault.respond(429, {"retry-after": "1"}),
        Fault.respond(408),
        Fault.respond(409),
        Fault.respond(400, {"x-should-retry": "true"}),
        Fault.drop(),
        Fault.truncate(),
        Fault.stall(2 * TIMEOUT),  # well past the attempt's timeout, even on a loaded machine
    ]
)
PAGES = 5


@st.composite
def plans_within_budget(draw: st.DrawFn) -> dict[int, Fault]:
    """Faults by request index such that no page fails more than max_retries (2) times."""
    plan: dict[int, Fault] = {}
    index = 0
    for _ in range(PAGES):
        for _ in range(draw(st.integers(0, 2))):
            plan[index] = draw(RETRYABLE)
            index += 1
        index += 1
    return plan


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(plan=plans_within_budget(), prefetch=st.sampled_from([0, 1, 3]))
async def test_faults_within_budget_deliver_every_batch_exactly_once(
    plan: dict[int, Fault], prefetch: int
) -> None:
    """Random retryable faults within the budget never lose, repeat or reorder a batch."""
    async with FakeBatchesServer(count=PAGES * LIMIT - 3, faults=plan) as server:
        with recorded_sleeps():
            async with aiobatches.Client(
                api_key="k", base_url=server.url, timeout=TIMEOUT
            ) as client:
                got = await client.list_batches(limit=LIMIT, prefetch=prefetch).to_list()
        assert ids(got) == [batch["id"] for batch in server.batches]
        assert len(server.page_requests) == PAGES + len(plan)
    assert stream_tasks() == []


@pytest.mark.parametrize(
    ("location", "status"),
    [("http://[oops", 302), ("http://127.0.0.2:1/v1/batches", 307), (None, 304)],
)
async def test_unfollowable_redirects_are_status_errors(
    server: FakeBatchesServer, location: str | None, status: int
) -> None:
    """An unparsable, cross-origin or absent Location surfaces as APIStatusError with the 3xx."""
    headers = {"Location": location} if location else {}
    server.faults = {0: Fault.respond(status, headers)}
    async with make_client(server) as client:
        with pytest.raises(aiobatches.APIStatusError) as caught:
            await client.list_batches().to_list()
    assert caught.value.status_code == status
    assert ("another origin" in str(caught.value)) == (location is not None)
    assert len(server.page_requests) == 1


async def test_same_origin_redirect_is_followed(server: FakeBatchesServer) -> None:
    """A redirect within the configured origin is followed, credentials included."""
    server.faults = {0: Fault.respond(307, {"Location": "/v1/batches?limit=100"})}
    async with make_client(server) as client:
        assert len(await client.list_batches().to_list()) == 50
    assert len(server.page_requests) == 2
    assert server.page_requests[1].headers["Authorization"] == f"Bearer {API_KEY}"


async def test_key_hidden_in_reason_phrase_and_json_escapes() -> None:
    """A key echoed in the reason phrase or as JSON escapes is redacted after decoding."""
    escaped = "".join(f"\\u{ord(char):04x}" for char in SECRET)
    body = f'{{"error": {{"message": "bad {escaped}", "code": 401, "param": "{escaped}"}}}}'
    faults = {0: Fault.respond(401, body=body)}
    async with (
        FakeBatchesServer(count=5, faults=faults) as server,
        aiobatches.Client(api_key=SECRET, base_url=server.url) as client,
    ):
        with pytest.raises(aiobatches.AuthenticationError) as caught:
            await client.list_batches().to_list()
    error = caught.value
    assert SECRET not in str(error)
    assert SECRET not in repr(error.body)
    assert error.param == "***"
    assert error.code == "401"


async def test_borrowed_session_raising_for_status_still_maps_errors(
    server: FakeBatchesServer,
) -> None:
    """A borrowed raise_for_status session still turns a 401 into AuthenticationError, unretried."""
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        aiobatches.Client(api_key="sk-wrong", base_url=server.url, session=session) as c,
    ):
        with pytest.raises(aiobatches.AuthenticationError):
            await c.list_batches().to_list()
    assert len(server.page_requests) == 1
