"""Client configuration, request shaping and error mapping (mostly unit tests over aioresponses)."""

from __future__ import annotations

import logging
import platform
from typing import Any

import aiohttp
import orjson
import pytest
from _helpers import API_KEY, MOCK_BASE, MOCK_LIST, envelope, eventually
from aioresponses import aioresponses
from yarl import URL

import aiobatches
from aiobatches.testing import FakeBatchesServer, recorded_sleeps, synthetic_batches


def sent(mocked: aioresponses) -> list[tuple[URL, dict[str, Any]]]:
    """Every request the mock saw: its URL (with the query) and its keyword arguments."""
    calls: list[tuple[URL, dict[str, Any]]] = []
    for (_, url), requests in mocked.requests.items():
        calls.extend((url, request.kwargs) for request in requests)
    return calls


def error_body(message: str, code: str | None = "some_code", param: str | None = None) -> bytes:
    """An OpenAI-shaped error response body."""
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": code,
            }
        }
    )


async def test_missing_key_is_a_clear_error_naming_the_variable() -> None:
    """Without api_key or OPENAI_API_KEY, construction fails and says what to set."""
    with pytest.raises(aiobatches.AIOBatchesError, match="OPENAI_API_KEY"):
        aiobatches.Client()


async def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch, mocked: aioresponses) -> None:
    """Key, base URL, organization and project come from the OpenAI variables."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", MOCK_BASE + "/")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_env")
    mocked.get(MOCK_LIST, payload=envelope([]))
    async with aiobatches.Client() as client:
        assert await client.list_batches().to_list() == []
    [(url, kwargs)] = sent(mocked)
    assert url.with_query(None) == URL(MOCK_BASE + "/batches")
    headers = kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {API_KEY}"
    assert headers["OpenAI-Organization"] == "org-env"
    assert headers["OpenAI-Project"] == "proj_env"


async def test_explicit_arguments_win_over_environment(
    monkeypatch: pytest.MonkeyPatch, mocked: aioresponses
) -> None:
    """Arguments passed to Client override the environment."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "https://elsewhere.test/v1")
    mocked.get(MOCK_LIST, payload=envelope([]))
    async with aiobatches.Client(
        api_key=API_KEY, base_url=MOCK_BASE, organization="org-arg"
    ) as client:
        await client.list_batches().to_list()
    [(url, kwargs)] = sent(mocked)
    assert url.host == "api.example.test"
    assert kwargs["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert kwargs["headers"]["OpenAI-Organization"] == "org-arg"


async def test_request_shape(mocked: aioresponses) -> None:
    """The first request asks for 100 items with auth, JSON accept, user agent and defaults."""
    mocked.get(MOCK_LIST, payload=envelope([]))
    async with aiobatches.Client(
        api_key=API_KEY,
        base_url=MOCK_BASE,
        default_headers={"X-Team": "data"},
        default_query={"trace": "1"},
    ) as client:
        await client.list_batches().to_list()
    [(url, kwargs)] = sent(mocked)
    assert dict(url.query) == {"trace": "1", "limit": "100"}
    headers = kwargs["headers"]
    assert headers["Accept"] == "application/json"
    assert headers["X-Team"] == "data"
    assert "OpenAI-Organization" not in headers
    agent = headers["User-Agent"]
    assert agent.startswith("aiobatches/")
    assert f"aiohttp/{aiohttp.__version__}" in agent
    assert f"Python/{platform.python_version()}" in agent
    assert kwargs["allow_redirects"] is False
    assert kwargs["timeout"] == aiohttp.ClientTimeout(total=60.0)


async def test_cursor_follows_last_item_and_limit_and_after_are_sent(mocked: aioresponses) -> None:
    """Each next page is requested after the previous page's last batch id."""
    items = synthetic_batches(5)
    mocked.get(MOCK_LIST, payload=envelope(items[:2], has_more=True))
    mocked.get(MOCK_LIST, payload=envelope(items[2:4], has_more=True))
    mocked.get(MOCK_LIST, payload=envelope(items[4:]))
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as client:
        got = await client.list_batches(limit=2, after="batch_start", prefetch=0).to_list()
    assert [batch.id for batch in got] == [item["id"] for item in items]
    queries = [dict(url.query) for url, _ in sent(mocked)]
    assert queries == [
        {"limit": "2", "after": "batch_start"},
        {"limit": "2", "after": items[1]["id"]},
        {"limit": "2", "after": items[3]["id"]},
    ]


async def test_timeout_number_or_client_timeout(mocked: aioresponses) -> None:
    """`timeout` seconds become a per-attempt total; a ClientTimeout is used as given."""
    mocked.get(MOCK_LIST, payload=envelope([]), repeat=True)
    custom = aiohttp.ClientTimeout(total=5, connect=1)
    for given, expected in ((2.5, aiohttp.ClientTimeout(total=2.5)), (custom, custom)):
        async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE, timeout=given) as client:
            await client.list_batches().to_list()
        assert sent(mocked)[-1][1]["timeout"] == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_retries": -1},
        {"connection_limit": -5},
        {"base_url": "api.openai.com/v1"},
        {"base_url": "ftp://api.openai.com/v1"},
    ],
)
def test_bad_client_arguments_raise_value_error(kwargs: dict[str, Any]) -> None:
    """Nonsense configuration fails at construction, not at the first request."""
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0]):
        aiobatches.Client(api_key=API_KEY, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [{"limit": 0}, {"limit": 101}, {"limit": True}, {"prefetch": -1}, {"max_items": -1}],
)
async def test_bad_stream_arguments_raise_before_any_request(
    mocked: aioresponses, kwargs: dict[str, Any]
) -> None:
    """Out-of-range limit, prefetch or max_items raise ValueError without a request."""
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as client:
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            client.list_batches(**kwargs)
    assert sent(mocked) == []


def test_key_never_in_repr() -> None:
    """repr() of a client shows where it points, never its key."""
    client = aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE)
    assert API_KEY not in repr(client)
    assert "api.example.test" in repr(client)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, aiobatches.BadRequestError),
        (401, aiobatches.AuthenticationError),
        (403, aiobatches.PermissionDeniedError),
        (404, aiobatches.NotFoundError),
        (409, aiobatches.ConflictError),
        (422, aiobatches.UnprocessableEntityError),
        (429, aiobatches.RateLimitError),
        (418, aiobatches.APIStatusError),
        (500, aiobatches.InternalServerError),
        (503, aiobatches.InternalServerError),
    ],
)
async def test_status_codes_map_to_error_classes(
    mocked: aioresponses, status: int, error_type: type[aiobatches.APIStatusError]
) -> None:
    """Each status raises its class with status, request id, body, code, type, param and cursor."""
    mocked.get(
        MOCK_LIST,
        status=status,
        body=error_body("Something is off.", code="some_code", param="after"),
        headers={"x-request-id": "req_123", "Content-Type": "application/json"},
    )
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE, max_retries=0) as client:
        with pytest.raises(error_type) as caught:
            await client.list_batches(after="batch_x").to_list()
    error = caught.value
    assert type(error) is error_type
    assert error.status_code == status
    assert error.request_id == "req_123"
    assert error.code == "some_code"
    assert error.type == "invalid_request_error"
    assert error.param == "after"
    assert error.body == {
        "message": "Something is off.",
        "type": "invalid_request_error",
        "param": "after",
        "code": "some_code",
    }
    assert error.cursor == "batch_x"
    assert "Something is off." in str(error)
    assert str(status) in str(error)


async def test_html_error_body_still_maps_and_reads_well(mocked: aioresponses) -> None:
    """A gateway's HTML page gives the right status error with its text, not its tags."""
    html = (
        "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"
    )
    mocked.get(MOCK_LIST, status=502, body=html, content_type="text/html")
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE, max_retries=0) as client:
        with pytest.raises(aiobatches.InternalServerError) as caught:
            await client.list_batches().to_list()
    assert "<" not in str(caught.value)
    assert "Bad Gateway" in str(caught.value)
    assert caught.value.code is None
    assert caught.value.body == html


async def test_key_echoed_by_server_is_redacted(mocked: aioresponses) -> None:
    """If an error body repeats the key, neither the message nor the body keeps it."""
    mocked.get(MOCK_LIST, status=401, body=error_body(f"Bad key {API_KEY}", code="invalid_api_key"))
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as client:
        with pytest.raises(aiobatches.AuthenticationError) as caught:
            await client.list_batches().to_list()
    assert API_KEY not in str(caught.value)
    assert API_KEY not in repr(caught.value.body)
    assert "***" in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"body": "<html>ok</html>", "content_type": "text/html"}, "content type"),
        ({"body": "{not json", "content_type": "application/json"}, "not JSON"),
        ({"payload": {"data": [], "has_more": "yes"}}, "has_more"),
        ({"payload": {"data": [{"id": "batch_1"}], "has_more": False}}, "batch_1"),
    ],
)
async def test_bad_success_bodies_are_validation_errors(
    mocked: aioresponses, kwargs: dict[str, Any], fragment: str
) -> None:
    """A 200 that is not a valid page raises APIResponseValidationError saying why."""
    mocked.get(MOCK_LIST, headers={"x-request-id": "req_v"}, **kwargs)
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as client:
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            await client.list_batches(after="batch_0").to_list()
    assert fragment in str(caught.value)
    assert caught.value.request_id == "req_v"
    assert caught.value.cursor == "batch_0"
    assert caught.value.status_code == 200


async def test_json_content_type_variants_are_accepted(mocked: aioresponses) -> None:
    """`application/json; charset=utf-8` and vendor `+json` types are JSON too."""
    for content_type in ("application/json; charset=utf-8", "application/problem+json"):
        mocked.get(MOCK_LIST, body=orjson.dumps(envelope([])), content_type=content_type)
        async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as client:
            assert await client.list_batches().to_list() == []


async def test_retryable_status_is_retried_on_same_cursor(mocked: aioresponses) -> None:
    """A 500 then a 200 yields the page, asking for the same cursor twice."""
    items = synthetic_batches(2)
    mocked.get(MOCK_LIST, status=500, body=error_body("boom"))
    mocked.get(MOCK_LIST, payload=envelope(items))
    with recorded_sleeps() as delays:
        async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as client:
            got = await client.list_batches(after="batch_c").to_list()
    assert [batch.id for batch in got] == [item["id"] for item in items]
    assert [dict(url.query)["after"] for url, _ in sent(mocked)] == ["batch_c", "batch_c"]
    assert len(delays) == 1
    assert 0.375 <= delays[0] <= 0.5


async def test_lifecycle_owned_session(server: FakeBatchesServer) -> None:
    """aclose (repeatable) releases the owned session's connections; a closed client refuses."""
    client = aiobatches.Client(api_key=API_KEY, base_url=server.url)
    assert await client.list_batches(max_items=3).to_list()
    assert server.open_connections == 1  # kept alive in the owned session's pool
    await client.aclose()
    await client.aclose()
    assert client.is_closed
    assert await eventually(lambda: server.open_connections == 0)
    with pytest.raises(RuntimeError, match="closed"):
        client.list_batches()
    with pytest.raises(RuntimeError, match="closed"):
        async with client:
            pass
    assert len(server.page_requests) == 1


async def test_borrowed_session_is_never_closed(mocked: aioresponses) -> None:
    """A session handed in is used for requests and left open on aclose."""
    mocked.get(MOCK_LIST, payload=envelope([]))
    async with aiohttp.ClientSession() as session:
        async with aiobatches.Client(
            api_key=API_KEY, base_url=MOCK_BASE, session=session
        ) as client:
            await client.list_batches().to_list()
        assert client.is_closed
        assert not session.closed


async def test_one_debug_record_per_request_without_key(
    mocked: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """Each request logs one DEBUG record with method, URL, status, request id, attempt, elapsed."""
    mocked.get(MOCK_LIST, payload=envelope([]), headers={"x-request-id": "req_log"})
    caplog.set_level(logging.DEBUG, logger="aiobatches")
    async with aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE) as client:
        await client.list_batches(limit=7).to_list()
    [record] = caplog.records
    assert record.levelno == logging.DEBUG
    assert record.name == "aiobatches"
    fields = record.__dict__
    assert fields["method"] == "GET"
    assert fields["url"] == MOCK_BASE + "/batches?limit=7"
    assert fields["status"] == 200
    assert fields["request_id"] == "req_log"
    assert fields["attempt"] == 0
    assert fields["elapsed"] >= 0
    assert "req_log" in record.getMessage()
    assert all(API_KEY not in str(value) for value in fields.values())
