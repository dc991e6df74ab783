"""The shipped fake server itself: its endpoint's rules, its faults, and a prompt close."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from _helpers import API_KEY, MakeServer, eventually

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan


async def test_close_cancels_an_answer_stalled_for_30_s(make_server: MakeServer) -> None:
    """Closing cancels an answer stalled for 30 s: the client sees its connection drop, no page."""
    server = await make_server(count=5, faults={0: Fault.stall(30)})
    async with aiobatches.Client(
        api_key=API_KEY, base_url=server.url, max_retries=0, timeout=60
    ) as client:
        listing = asyncio.create_task(client.list_batches().to_list())
        assert await eventually(lambda: bool(server.page_requests))
        async with asyncio.timeout(20):  # hang guard: an answer not cancelled takes 30 s
            await server.close()
            with pytest.raises(aiobatches.APIConnectionError) as caught:
                await listing
    assert not isinstance(caught.value, aiobatches.APITimeoutError)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_url_before_start_says_the_server_is_not_running() -> None:
    """A server not started has no URL yet, and says how to start it."""
    with pytest.raises(RuntimeError, match="not running"):
        _ = FakeBatchesServer().url


async def test_a_mapping_of_faults_becomes_a_plan(server: FakeBatchesServer) -> None:
    """Assigning `{index: Fault}` reads back as the equivalent FaultPlan."""
    server.faults = {1: Fault.drop()}
    assert server.faults == FaultPlan(at={1: Fault.drop()})
    server.faults = None
    assert server.faults == FaultPlan()


@pytest.mark.parametrize(
    ("limit", "code", "message"),
    [
        ("many", "invalid_type", "expected an integer, but got 'many' instead"),
        ("0", "integer_below_min_value", "Expected a value >= 1, but got 0 instead"),
        ("101", "integer_above_max_value", "Expected a value <= 100, but got 101 instead"),
    ],
)
async def test_bad_limit_is_the_apis_400(
    server: FakeBatchesServer, limit: str, code: str, message: str
) -> None:
    """A limit that is not 1..100 gets the OpenAI-shaped 400 naming `limit`, with a request id."""
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as session,
        session.get(f"{server.url}/batches", params={"limit": limit}) as response,
    ):
        body = await response.json()
    assert response.status == 400
    assert response.headers["x-request-id"].startswith("req_")
    assert body["error"]["param"] == "limit"
    assert body["error"]["code"] == code
    assert body["error"]["type"] == "invalid_request_error"
    assert message in body["error"]["message"]


async def test_unknown_path_is_a_recorded_404(server: FakeBatchesServer) -> None:
    """Any other path is the API's 404 naming the method and path, and is recorded."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.url}/files") as response,
    ):
        body = await response.json()
    assert response.status == 404
    assert body["error"]["message"] == "Invalid URL (POST /v1/files)"
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/v1/files")]
    assert server.page_requests == []


async def test_missing_key_is_the_apis_401(server: FakeBatchesServer) -> None:
    """A request without Authorization gets the API's 401 with no code."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/batches") as response,
    ):
        body = await response.json()
    assert response.status == 401
    assert body["error"]["code"] is None
    assert "You didn't provide an API key" in body["error"]["message"]
