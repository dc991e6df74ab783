"""One typed definition of Client's settings serves AzureClient and the one-shot stream."""

from __future__ import annotations

import inspect
import typing

import aiobatches
from aiobatches._config import ClientOptions
from aiobatches.testing import FakeBatchesServer


def keyword_settings(function: object) -> set[str]:
    """The keyword-only parameter names of a callable."""
    parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_client_options_are_exactly_clients_settings() -> None:
    """ClientOptions lists every keyword setting of Client but the key and URL, and no more."""
    assert set(typing.get_type_hints(ClientOptions)) == keyword_settings(aiobatches.Client) - {
        "base_url"
    }


def test_one_shot_stream_takes_every_client_and_stream_setting() -> None:
    """aiobatches.list_batches accepts Client's settings and list_batches' arguments by name."""
    hints = set(typing.get_type_hints(aiobatches.list_batches))
    expected = (
        keyword_settings(aiobatches.Client)
        | keyword_settings(aiobatches.Client.list_batches)
        | {"api_key"}
    )
    assert expected <= hints | set(typing.get_type_hints(ClientOptions))


async def test_azure_client_takes_clients_settings() -> None:
    """AzureClient passes Client's settings through: they reach the server on every page."""
    async with (
        FakeBatchesServer(count=5, azure=True, azure_api_version="2024-10-21") as server,
        aiobatches.AzureClient(
            azure_endpoint=server.url,
            api_version="2024-10-21",
            api_key="azure-key-0123456789",
            organization="org-1",
            default_query={"x": "1"},
            default_headers={"X-Team": "batch"},
            max_retries=0,
        ) as client,
    ):
        assert len(await client.list_batches().to_list()) == 5
    (request,) = server.page_requests
    assert request.query["x"] == "1"
    assert request.query["api-version"] == "2024-10-21"
    assert request.headers["OpenAI-Organization"] == "org-1"
    assert request.headers["X-Team"] == "batch"
    assert request.headers["api-key"] == "azure-key-0123456789"
