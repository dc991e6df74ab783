"""The shipped fake server itself: its endpoint's rules, its faults, and a prompt close."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from _helpers import API_KEY, MakeServer, eventually

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan, synthetic_batches


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


@pytest.mark.parametrize("azure", [False, True], ids=["openai", "azure-versioned"])
async def test_counts_beyond_64_bits_are_served_exactly(
    make_server: MakeServer, azure: bool
) -> None:
    """A batch whose count orjson cannot write is served exactly, listed and retrieved."""
    huge = 2**70 + 1
    batches = [
        {**batch, "request_counts": {"total": huge, "completed": 0, "failed": huge}}
        for batch in synthetic_batches(2, seed=3)
    ]
    server = await make_server(batches=batches, api_key=API_KEY, azure=azure)
    client = (
        aiobatches.AzureClient(azure_endpoint=server.url, api_key=API_KEY, api_version=AZ)
        if azure
        else aiobatches.Client(api_key=API_KEY, base_url=server.url)
    )
    async with client:
        listed = await client.list_batches().to_list()
        retrieved = await client.retrieve_batch(batches[1]["id"])
    for batch in [*listed, retrieved]:
        assert batch.request_counts == aiobatches.BatchRequestCounts(huge, 0, huge)
    assert [batch.id for batch in listed] == [batch["id"] for batch in batches]


# --- Azure mode: both API styles, Azure's shapes and errors ---------------------------------------


AZ = "2024-10-21"
"""The api-version an Azure-mode server takes by default."""


async def get_json(url: str, **params: str) -> tuple[int, Any]:
    """GET `url` with the Azure key, and its status and decoded body."""
    async with (
        aiohttp.ClientSession(headers={"api-key": API_KEY}) as session,
        session.get(url, params=params) as response,
    ):
        return response.status, await response.json()


@pytest.fixture
async def azure(make_server: MakeServer) -> FakeBatchesServer:
    """An Azure-mode server taking its default api-version, with failed batches among its 60."""
    return await make_server(count=60, api_key=API_KEY, azure=True)


async def test_azure_mode_serves_both_styles_and_counts_both(azure: FakeBatchesServer) -> None:
    """List and retrieve answer on both paths; page and retrieve requests count both."""
    batch_id = azure.batches[0]["id"]
    base = azure.url
    assert (await get_json(f"{base}/openai/batches", **{"api-version": AZ}))[0] == 200
    assert (await get_json(f"{base}/openai/v1/batches"))[0] == 200
    retrieved, _ = await get_json(f"{base}/openai/batches/{batch_id}", **{"api-version": AZ})
    assert retrieved == 200
    assert (await get_json(f"{base}/openai/v1/batches/{batch_id}"))[0] == 200
    assert [r.path for r in azure.page_requests] == ["/openai/batches", "/openai/v1/batches"]
    assert [r.path for r in azure.retrieve_requests] == [
        f"/openai/batches/{batch_id}",
        f"/openai/v1/batches/{batch_id}",
    ]


async def test_azure_versioned_path_answers_in_the_published_shapes(
    azure: FakeBatchesServer,
) -> None:
    """The versioned list has only object and data; a failure's errors.data is one object."""
    version = {"api-version": "2024-10-21"}
    _, page = await get_json(f"{azure.url}/openai/batches", limit="100", **version)
    _, v1_page = await get_json(f"{azure.url}/openai/v1/batches", limit="100")
    assert set(page) == {"object", "data"}
    assert {"first_id", "last_id", "has_more"} <= set(v1_page)
    failed = [i for i, batch in enumerate(v1_page["data"]) if batch["errors"] is not None]
    assert failed
    for index in failed:
        first = v1_page["data"][index]["errors"]["data"][0]
        lone = page["data"][index]["errors"]["data"]
        assert lone == {**first, "line": str(first["line"])}
        batch_id = page["data"][index]["id"]
        _, retrieved = await get_json(f"{azure.url}/openai/batches/{batch_id}", **version)
        assert retrieved == page["data"][index]


@pytest.mark.parametrize(
    ("path", "params", "status", "code", "message"),
    [
        ("/openai/batches", {}, 400, "BadRequest", "API version not supported"),
        ("/openai/batches", {"api-version": "1999-01-01"}, 400, "BadRequest", "API version"),
        (
            "/openai/v1/batches",
            {"api-version": "2024-10-21"},
            400,
            "BadRequest",
            "api-version query parameter is not allowed when using /v1 path",
        ),
        ("/openai/v1/batches", {"limit": "0"}, 400, "BadRequest", "Invalid 'limit'"),
        ("/openai/v1/batches", {"after": "batch_nope"}, 400, "BadRequest", "Invalid 'after'"),
        ("/openai/v1/batches/batch_nope", {}, 404, "NotFound", "batch_nope"),
        ("/openai/files", {}, 404, "NotFound", "Resource not found"),
    ],
)
async def test_azure_errors_have_azures_shape(
    azure: FakeBatchesServer,
    path: str,
    params: dict[str, str],
    *,
    status: int,
    code: str,
    message: str,
) -> None:
    """Every refusal in Azure mode is `{"error": {"code", "message"}}`, with no type or param."""
    got_status, body = await get_json(azure.url + path, **params)
    assert got_status == status
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert message in body["error"]["message"]


async def test_azure_refused_key_and_injected_fault_have_azures_shape(
    azure: FakeBatchesServer,
) -> None:
    """A wrong key is Azure's 401 with code "401"; an injected 429 carries its status as code."""
    async with (
        aiohttp.ClientSession(headers={"api-key": "wrong"}) as session,
        session.get(f"{azure.url}/openai/v1/batches") as response,
    ):
        denied = await response.json()
    assert response.status == 401
    assert denied["error"]["code"] == "401"
    assert denied["error"]["message"].startswith("Access denied due to invalid subscription key")
    azure.faults = {len(azure.page_requests): Fault.respond(429)}
    status, body = await get_json(f"{azure.url}/openai/v1/batches")
    assert (status, body) == (429, {"error": {"code": "429", "message": "Injected fault: 429."}})


def test_an_azure_api_version_needs_azure_mode() -> None:
    """Naming an api-version without azure=True is refused, rather than silently ignored."""
    with pytest.raises(ValueError, match="azure=True"):
        FakeBatchesServer(azure_api_version="2024-10-21")
    assert FakeBatchesServer(azure=True).azure_api_version == "2024-10-21"
    assert FakeBatchesServer().azure_api_version is None
