"""Azure OpenAI: URL, api-version, credentials, token refresh, and credentials staying home."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from _helpers import API_KEY, AZURE_VERSION, MakeServer, ids, served_ids

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, recorded_sleeps


@pytest.fixture
async def azure(make_server: MakeServer) -> FakeBatchesServer:
    """A fake Azure OpenAI endpoint of 45 batches taking API_KEY as api-key or Bearer."""
    return await make_server(count=45, api_key=API_KEY, azure_api_version=AZURE_VERSION)


async def test_api_key_lists_every_page_with_the_api_version(azure: FakeBatchesServer) -> None:
    """The key goes as `api-key`, `api-version` is on every page, the path is /openai/batches."""
    async with aiobatches.AzureClient(
        azure_endpoint=azure.url, api_version=AZURE_VERSION, api_key=API_KEY
    ) as client:
        got = await client.list_batches(limit=10).to_list()
    assert ids(got) == served_ids(azure)
    requests = azure.page_requests
    assert len(requests) == 5
    assert all(request.path == "/openai/batches" for request in requests)
    assert all(request.query["api-version"] == AZURE_VERSION for request in requests)
    assert all(request.headers["api-key"] == API_KEY for request in requests)
    assert all("Authorization" not in request.headers for request in requests)
    assert requests[1].query["after"] == got[9].id


async def test_static_ad_token_is_sent_as_bearer(azure: FakeBatchesServer) -> None:
    """An AD token goes as `Authorization: Bearer`, and wins over a key."""
    async with aiobatches.AzureClient(
        azure_endpoint=azure.url,
        api_version=AZURE_VERSION,
        azure_ad_token=API_KEY,
        api_key="unused",
    ) as client:
        assert len(await client.list_batches().to_list()) == 45
    [request] = azure.page_requests
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "api-key" not in request.headers


@pytest.mark.parametrize("style", ["sync", "async"])
async def test_token_provider_is_called_for_every_request(
    azure: FakeBatchesServer, style: str
) -> None:
    """A provider (sync or async) gives a token per request, retries included."""
    calls = 0

    def sync_provider() -> str:
        nonlocal calls
        calls += 1
        return API_KEY

    async def async_provider() -> str:
        return sync_provider()

    azure.faults = {1: Fault.respond(503)}
    with recorded_sleeps():
        async with aiobatches.AzureClient(
            azure_endpoint=azure.url,
            api_version=AZURE_VERSION,
            azure_ad_token_provider=sync_provider if style == "sync" else async_provider,
        ) as client:
            assert len(await client.list_batches(limit=20).to_list()) == 45
    assert calls == len(azure.page_requests) == 4
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in azure.page_requests)


async def test_environment_fallbacks(
    azure: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endpoint, version and key come from the Azure variables when not passed."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure.url + "/")
    monkeypatch.setenv("OPENAI_API_VERSION", AZURE_VERSION)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    async with aiobatches.AzureClient() as client:
        assert len(await client.list_batches().to_list()) == 45
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", API_KEY)
    async with aiobatches.AzureClient() as client:
        assert len(await client.list_batches().to_list()) == 45
    assert azure.page_requests[-1].headers["Authorization"] == f"Bearer {API_KEY}"


ENDPOINT = "https://x.openai.azure.com"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"api_version": AZURE_VERSION, "api_key": "k"}, "AZURE_OPENAI_ENDPOINT"),
        ({"azure_endpoint": ENDPOINT, "api_key": "k"}, "OPENAI_API_VERSION"),
        ({"azure_endpoint": ENDPOINT, "api_version": AZURE_VERSION}, "AZURE_OPENAI_API_KEY"),
    ],
)
def test_missing_settings_are_clear_errors(kwargs: dict[str, str], named: str) -> None:
    """A missing endpoint, version or credential is refused at construction, naming the variable."""
    with pytest.raises(aiobatches.AIOBatchesError, match=named):
        aiobatches.AzureClient(**kwargs)  # type: ignore[arg-type]


async def test_errors_and_retries_are_clients(azure: FakeBatchesServer) -> None:
    """A wrong key and a wrong api-version map to the same errors as Client's; keys stay hidden."""
    async with aiobatches.AzureClient(
        azure_endpoint=azure.url, api_version=AZURE_VERSION, api_key="sk-wrong-azure-key-0000"
    ) as client:
        with pytest.raises(aiobatches.AuthenticationError) as caught:
            await client.list_batches().to_list()
        assert "sk-wrong-azure-key-0000" not in str(caught.value)
        assert "sk-wrong-azure-key-0000" not in repr(client)
    async with aiobatches.AzureClient(
        azure_endpoint=azure.url, api_version="1999-01-01", api_key=API_KEY
    ) as client:
        with pytest.raises(aiobatches.BadRequestError) as version_error:
            await client.list_batches().to_list()
    assert version_error.value.param == "api-version"


async def test_provider_tokens_are_redacted() -> None:
    """A token from the provider echoed by the server does not reach the error."""
    token = "aad-token-that-must-stay-secret"
    body = f'{{"error": {{"message": "token {token} expired", "code": "expired"}}}}'
    async with (
        FakeBatchesServer(
            azure_api_version=AZURE_VERSION, faults={0: Fault.respond(401, body=body)}
        ) as server,
        aiobatches.AzureClient(
            azure_endpoint=server.url,
            api_version=AZURE_VERSION,
            azure_ad_token_provider=lambda: token,
        ) as client,
    ):
        with pytest.raises(aiobatches.AuthenticationError) as caught:
            await client.list_batches().to_list()
    assert token not in str(caught.value)
    assert token not in repr(caught.value.body)


@pytest.fixture
async def elsewhere(make_server: MakeServer) -> FakeBatchesServer:
    """Another host (127.0.0.2) that must never receive a credential."""
    return await make_server(count=5, host="127.0.0.2")


async def test_plain_aiohttp_would_leak_api_key_on_redirect(
    azure: FakeBatchesServer, elsewhere: FakeBatchesServer
) -> None:
    """Control: aiohttp following a cross-origin redirect forwards `api-key` to the new host."""
    azure.faults = {0: Fault.respond(307, {"Location": f"{elsewhere.url}/batches"})}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{azure.url}/openai/batches",
            params={"api-version": AZURE_VERSION},
            headers={"api-key": API_KEY},
        ) as response,
    ):
        assert response.status == 200
    assert elsewhere.page_requests[0].headers["api-key"] == API_KEY


@pytest.mark.parametrize("flavour", ["openai", "azure"])
async def test_cross_origin_redirect_sends_no_credential(
    azure: FakeBatchesServer, elsewhere: FakeBatchesServer, flavour: str
) -> None:
    """A redirect to another host is not followed: it raises the 3xx and that host sees nothing."""
    async with FakeBatchesServer(count=5, api_key=API_KEY) as openai_like:
        origin = azure if flavour == "azure" else openai_like
        path = "/openai/batches" if flavour == "azure" else "/v1/batches"
        origin.faults = {0: Fault.respond(307, {"Location": f"{elsewhere.url}/batches"})}
        client: aiobatches.Client
        if flavour == "azure":
            client = aiobatches.AzureClient(
                azure_endpoint=azure.url, api_version=AZURE_VERSION, api_key=API_KEY
            )
        else:
            client = aiobatches.Client(api_key=API_KEY, base_url=openai_like.url)
        async with client:
            with pytest.raises(aiobatches.APIStatusError) as caught:
                await client.list_batches().to_list()
    assert caught.value.status_code == 307
    assert "another origin" in str(caught.value)
    assert [request.path for request in origin.requests] == [path]
    assert elsewhere.requests == []


async def test_token_provider_time_counts_within_the_attempt_timeout(
    azure: FakeBatchesServer,
) -> None:
    """A provider that hangs makes the attempt time out; it cannot stall a listing for ever."""
    calls = 0

    async def slow_provider() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(30)
        return "token"

    async with aiobatches.AzureClient(
        azure_endpoint=azure.url,
        api_version=AZURE_VERSION,
        azure_ad_token_provider=slow_provider,
        timeout=0.2,
        max_retries=1,
    ) as client:
        with recorded_sleeps(), pytest.raises(aiobatches.APITimeoutError):
            await client.list_batches().to_list()
    assert calls == 2  # the first attempt and its retry
    assert azure.page_requests == []
