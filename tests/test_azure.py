"""Azure OpenAI: both API styles, credentials, token refresh, Azure's shapes and errors, and
credentials staying home."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from _helpers import API_KEY, AZURE_VERSION, MakeServer, ids, served_ids

import aiobatches
from aiobatches._converter import parse_page
from aiobatches.testing import FakeBatchesServer, Fault, ManualClock, recorded_sleeps

STYLES: Final = ["versioned", "v1"]
"""`versioned`: `/openai/batches?api-version=...`; `v1`: `/openai/v1/batches`, no version."""
PATHS: Final = {"versioned": "/openai/batches", "v1": "/openai/v1/batches"}

SPEC_EXAMPLE: Final = Path(__file__).with_name("azure_get_batches_2024-10-21.json")
"""The `get_batches` example of Azure's published REST spec, verbatim: Azure/azure-rest-api-specs,
specification/cognitiveservices/data-plane/AzureOpenAI/authoring/stable/2024-10-21/examples/
get_batches.json (commit 11aef454358bdd09317981aeed9d0679cfbac173)."""


def azure_client(server: FakeBatchesServer, style: str, **kwargs: Any) -> aiobatches.AzureClient:
    """An AzureClient for the fake endpoint: with the API version, or on the v1 API."""
    kwargs.setdefault("api_key", API_KEY)
    version = AZURE_VERSION if style == "versioned" else None
    return aiobatches.AzureClient(azure_endpoint=server.url, api_version=version, **kwargs)


def assert_style(requests: list[Any], style: str) -> None:
    """Every request went to the style's path, with its version or with none at all."""
    assert requests
    for request in requests:
        assert request.path.startswith(PATHS[style])
        if style == "versioned":
            assert request.query["api-version"] == AZURE_VERSION
        else:
            assert "api-version" not in request.query


@pytest.fixture
async def azure(make_server: MakeServer) -> FakeBatchesServer:
    """A fake Azure OpenAI endpoint of 45 batches taking API_KEY as api-key or Bearer."""
    return await make_server(count=45, api_key=API_KEY, azure=True, azure_api_version=AZURE_VERSION)


async def test_api_key_lists_every_page_with_the_api_version(azure: FakeBatchesServer) -> None:
    """The key goes as `api-key`, `api-version` is on every page, the path is /openai/batches."""
    async with azure_client(azure, "versioned") as client:
        got = await client.list_batches(limit=10).to_list()
    assert ids(got) == served_ids(azure)
    requests = azure.page_requests
    assert len(requests) == 5  # four full pages, then a short one ends the list
    assert_style(requests, "versioned")
    assert all(request.headers["api-key"] == API_KEY for request in requests)
    assert all("Authorization" not in request.headers for request in requests)
    assert requests[1].query["after"] == got[9].id


async def test_without_a_version_lists_the_v1_api(azure: FakeBatchesServer) -> None:
    """With no API version the client lists /openai/v1/batches and sends no `api-version`."""
    async with azure_client(azure, "v1") as client:
        got = await client.list_batches(limit=10).to_list()
        assert repr(client).endswith("/openai/v1/batches open>")
    assert ids(got) == served_ids(azure)
    assert len(azure.page_requests) == 5
    assert_style(azure.page_requests, "v1")
    assert [request.query.get("after") for request in azure.page_requests[1:]] == [
        got[index].id for index in (9, 19, 29, 39)
    ]


async def test_repr_shows_the_api_version(azure: FakeBatchesServer) -> None:
    """The versioned client's repr names the URL with its api-version, never the key."""
    client = azure_client(azure, "versioned")
    assert repr(client) == (
        f"<AzureClient {azure.url}/openai/batches?api-version={AZURE_VERSION} unopened>"
    )
    assert API_KEY not in repr(client)


async def test_both_styles_list_the_same_batches(azure: FakeBatchesServer) -> None:
    """Both styles give equal batches, but the versioned path sends only a failure's first error."""
    async with azure_client(azure, "versioned") as versioned, azure_client(azure, "v1") as v1:
        old = await versioned.list_batches().to_list()
        new = await v1.list_batches().to_list()
    failed = [(a, b) for a, b in zip(old, new, strict=True) if b.errors is not None]
    assert failed
    for from_versioned, from_v1 in failed:
        assert from_v1.errors is not None
        assert from_versioned.errors is not None
        assert from_versioned.errors.data == from_v1.errors.data[:1]
        assert isinstance(from_versioned.errors.data[0].line, int)
    unfailed = [(a, b) for a, b in zip(old, new, strict=True) if b.errors is None]
    assert all(a == b for a, b in unfailed)


@pytest.mark.parametrize("style", STYLES)
async def test_retrieve_through_either_style(azure: FakeBatchesServer, style: str) -> None:
    """A batch is retrieved at the style's path; an unknown id is NotFoundError in Azure's shape."""
    wanted = served_ids(azure)[3]
    async with azure_client(azure, style) as client:
        batch = await client.retrieve_batch(wanted)
        with pytest.raises(aiobatches.NotFoundError) as caught:
            await client.retrieve_batch("batch_missing")
    assert batch.id == wanted
    assert [request.path for request in azure.retrieve_requests] == [
        f"{PATHS[style]}/{wanted}",
        f"{PATHS[style]}/batch_missing",
    ]
    assert_style(azure.retrieve_requests, style)
    assert caught.value.code == "NotFound"
    assert caught.value.type is None
    assert caught.value.param is None


@pytest.mark.parametrize("style", STYLES)
async def test_wait_for_batches_through_either_style(make_server: MakeServer, style: str) -> None:
    """Waiting on living batches works through either style, every request in its shape."""
    clock = ManualClock()
    server = await make_server(
        count=30, api_key=API_KEY, azure=True, azure_api_version=AZURE_VERSION, clock=clock
    )
    unfinished = [
        batch["id"]
        for batch in server.batches
        if batch["status"] not in aiobatches.FINISHED_STATUSES
    ]
    assert unfinished
    async with azure_client(server, style) as client:
        with clock.driving_sleeps():
            done = await client.wait_for_batches(unfinished[:2], poll_interval=600)
    assert ids(done) == unfinished[:2]
    assert all(batch.is_finished for batch in done)
    assert_style(server.requests, style)


@pytest.mark.parametrize("style", STYLES)
async def test_watch_batches_through_either_style(make_server: MakeServer, style: str) -> None:
    """A watch sees every batch, then the changes, through either style, in its shape."""
    clock = ManualClock()
    server = await make_server(
        count=30,
        api_key=API_KEY,
        azure=True,
        azure_api_version=AZURE_VERSION,
        clock=clock,
        arrival_every=900,
    )
    kinds: list[str] = []
    async with azure_client(server, style) as client:
        with clock.driving_sleeps():
            async with client.watch_batches(poll_interval=600) as watch:
                async for event in watch:
                    kinds.append(event.kind)
                    if event.kind == "created":
                        break
                state = watch.checkpoint()
        # A checkpoint says it is of an Azure resource's watch: an OpenAI client refuses it.
        assert state["api"] == "Azure OpenAI"
        async with client.watch_batches(resume=state):
            pass
    with pytest.raises(ValueError, match="Azure OpenAI"):
        aiobatches.Client(api_key=API_KEY).watch_batches(resume=state)
    assert kinds.count("existing") == 30
    assert kinds[-1] == "created"
    assert_style(server.requests, style)


async def test_static_ad_token_is_sent_as_bearer(azure: FakeBatchesServer) -> None:
    """An AD token goes as `Authorization: Bearer`, and wins over a key."""
    async with azure_client(azure, "versioned", azure_ad_token=API_KEY, api_key="unused") as client:
        assert len(await client.list_batches().to_list()) == 45
    [request] = azure.page_requests
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert "api-key" not in request.headers


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_token_provider_is_called_for_every_request(
    azure: FakeBatchesServer, kind: str, style: str
) -> None:
    """A provider (sync or async) gives a token per request, retries included, in either style."""
    calls = 0

    def sync_provider() -> str:
        nonlocal calls
        calls += 1
        return API_KEY

    async def async_provider() -> str:
        return sync_provider()

    azure.faults = {1: Fault.respond(503)}
    provider = sync_provider if kind == "sync" else async_provider
    with recorded_sleeps():
        async with azure_client(azure, style, api_key=None, azure_ad_token_provider=provider) as c:
            assert len(await c.list_batches(limit=20).to_list()) == 45
    assert calls == len(azure.page_requests) == 4
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in azure.page_requests)
    assert_style(azure.page_requests, style)


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
    assert_style(azure.page_requests, "versioned")


@pytest.mark.parametrize("unset", ["absent", "empty"])
async def test_no_version_in_the_environment_means_the_v1_api(
    azure: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch, unset: str
) -> None:
    """With OPENAI_API_VERSION unset (or empty) and no argument, the client uses the v1 API."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure.url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    if unset == "empty":
        monkeypatch.setenv("OPENAI_API_VERSION", "")
    async with aiobatches.AzureClient() as client:
        assert len(await client.list_batches().to_list()) == 45
        finished = [b["id"] for b in azure.batches if b["status"] in aiobatches.FINISHED_STATUSES]
        assert len(await client.wait_for_batches(finished[:1])) == 1
    assert_style(azure.requests, "v1")


ENDPOINT = "https://x.openai.azure.com"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"api_version": AZURE_VERSION, "api_key": "k"}, "AZURE_OPENAI_ENDPOINT"),
        ({"azure_endpoint": ENDPOINT, "api_version": AZURE_VERSION}, "AZURE_OPENAI_API_KEY"),
        ({"azure_endpoint": ENDPOINT}, "AZURE_OPENAI_API_KEY"),
    ],
)
def test_missing_settings_are_clear_errors(kwargs: dict[str, str], named: str) -> None:
    """A missing endpoint or credential is refused at construction, naming the variable."""
    with pytest.raises(aiobatches.AIOBatchesError, match=named):
        aiobatches.AzureClient(**kwargs)  # type: ignore[arg-type]


def test_no_version_is_no_error() -> None:
    """No API version anywhere is no error: the client is made, for the v1 API."""
    client = aiobatches.AzureClient(azure_endpoint=ENDPOINT, api_key="k")
    assert repr(client) == f"<AzureClient {ENDPOINT}/openai/v1/batches unopened>"


@pytest.mark.parametrize("suffix", ["/openai", "/openai/", "/OpenAI"])
@pytest.mark.parametrize("style", STYLES)
async def test_endpoint_ending_in_openai_is_not_doubled(
    azure: FakeBatchesServer, style: str, suffix: str
) -> None:
    """An endpoint ending in Azure's own `/openai` lists and retrieves at the style's path."""
    async with aiobatches.AzureClient(
        azure_endpoint=azure.url + suffix,
        api_version=AZURE_VERSION if style == "versioned" else None,
        api_key=API_KEY,
    ) as client:
        assert len(await client.list_batches().to_list()) == 45
        await client.retrieve_batch(served_ids(azure)[0])
    assert_style(azure.requests, style)


@pytest.mark.parametrize("suffix", ["/openai/v1", "/openai/v1/", "/OpenAI/V1"])
async def test_endpoint_ending_in_openai_v1_means_the_v1_api(
    azure: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """An endpoint ending in `/openai/v1` lists the v1 API, even with OPENAI_API_VERSION set."""
    monkeypatch.setenv("OPENAI_API_VERSION", AZURE_VERSION)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    async with aiobatches.AzureClient(azure_endpoint=azure.url + suffix) as client:
        assert len(await client.list_batches().to_list()) == 45
        await client.retrieve_batch(served_ids(azure)[0])
    assert_style(azure.requests, "v1")


def test_api_version_argument_with_a_v1_endpoint_is_refused() -> None:
    """An `api_version` argument with an endpoint ending in `/openai/v1` is a ValueError."""
    with pytest.raises(ValueError, match=r"api_version .* azure_endpoint ends in /openai/v1"):
        aiobatches.AzureClient(
            azure_endpoint=f"{ENDPOINT}/openai/v1/", api_version=AZURE_VERSION, api_key="k"
        )


@pytest.mark.parametrize(
    ("endpoint", "lists"),
    [
        (
            "https://apim.azure-api.net/team-a",
            "https://apim.azure-api.net/team-a/openai/v1/batches",
        ),
        (
            "https://apim.azure-api.net/team-a/",
            "https://apim.azure-api.net/team-a/openai/v1/batches",
        ),
        (
            "https://apim.azure-api.net/team-a/openai/v1/",
            "https://apim.azure-api.net/team-a/openai/v1/batches",
        ),
        (
            "https://apim.azure-api.net/team-a/openai",
            "https://apim.azure-api.net/team-a/openai/v1/batches",
        ),
        (
            "https://apim.azure-api.net/my-openai",
            "https://apim.azure-api.net/my-openai/openai/v1/batches",
        ),
        ("https://apim.azure-api.net/v1", "https://apim.azure-api.net/v1/openai/v1/batches"),
    ],
)
def test_a_path_prefix_on_the_endpoint_is_kept(endpoint: str, lists: str) -> None:
    """A path prefix (API Management) is kept; only Azure's own path at its end is dropped."""
    client = aiobatches.AzureClient(azure_endpoint=endpoint, api_key="k")
    assert repr(client) == f"<AzureClient {lists} unopened>"


@pytest.mark.parametrize("blank", ["", " ", "   "], ids=["empty", "space", "spaces"])
@pytest.mark.parametrize("source", ["argument", "environment"])
async def test_blank_api_version_means_the_v1_api(
    azure: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch, source: str, blank: str
) -> None:
    """An empty or blank version, argument (over the environment's) or variable, is the v1 API."""
    monkeypatch.setenv("OPENAI_API_VERSION", AZURE_VERSION if source == "argument" else blank)
    version = blank if source == "argument" else None
    async with aiobatches.AzureClient(
        azure_endpoint=azure.url, api_version=version, api_key=API_KEY
    ) as client:
        assert repr(client) == f"<AzureClient {azure.url}/openai/v1/batches open>"
        assert len(await client.list_batches().to_list()) == 45
    assert_style(azure.requests, "v1")


@pytest.mark.parametrize("source", ["argument", "environment"])
async def test_api_version_is_sent_without_surrounding_spaces(
    azure: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """A version with spaces around it is sent as the version alone, never as `+...+`."""
    padded = f" {AZURE_VERSION}  "
    monkeypatch.setenv("OPENAI_API_VERSION", padded)
    version = padded if source == "argument" else None
    async with aiobatches.AzureClient(
        azure_endpoint=azure.url, api_version=version, api_key=API_KEY
    ) as client:
        assert len(await client.list_batches().to_list()) == 45
    assert_style(azure.requests, "versioned")


@pytest.mark.parametrize("batch_id", [".", "..", "batch_1/..", "/"])
@pytest.mark.parametrize("style", STYLES)
async def test_retrieve_refuses_an_id_that_is_not_one_path_segment(
    azure: FakeBatchesServer, style: str, batch_id: str
) -> None:
    """`.`, `..` or an id with `/` is a ValueError before any request, in either style."""
    async with azure_client(azure, style) as client:
        with pytest.raises(ValueError, match="batch_id must be a batch id"):
            await client.retrieve_batch(batch_id)
    assert azure.requests == []


@pytest.mark.parametrize("style", STYLES)
async def test_fake_servers_errors_map_as_clients(azure: FakeBatchesServer, style: str) -> None:
    """A wrong key is AuthenticationError, Azure's code, no type or param; the key stays hidden."""
    async with azure_client(azure, style, api_key="sk-wrong-azure-key-0000") as client:
        with pytest.raises(aiobatches.AuthenticationError) as caught:
            await client.list_batches().to_list()
        assert "sk-wrong-azure-key-0000" not in str(caught.value)
        assert "sk-wrong-azure-key-0000" not in repr(client)
    error = caught.value
    assert (error.code, error.type, error.param) == ("401", None, None)
    assert "Access denied due to invalid subscription key" in str(error)
    assert len(azure.page_requests) == 1  # a 401 is not retried


async def test_wrong_api_version_is_a_bad_request(azure: FakeBatchesServer) -> None:
    """A version the endpoint does not take is BadRequestError in Azure's shape, not retried."""
    async with aiobatches.AzureClient(
        azure_endpoint=azure.url, api_version="1999-01-01", api_key=API_KEY
    ) as client:
        with pytest.raises(aiobatches.BadRequestError) as caught:
            await client.list_batches().to_list()
    assert (caught.value.code, caught.value.type, caught.value.param) == ("BadRequest", None, None)
    assert "API version not supported" in str(caught.value)
    assert len(azure.page_requests) == 1


AZURE_ERRORS: Final = [
    (429, {"code": "tooManyRequests", "message": "Too many requests. Please retry later."}),
    (
        429,
        {
            "code": "429",
            "message": "Requests to the Batch API have exceeded call rate limit. "
            "Please retry after 1 second.",
        },
    ),
    (401, {"code": "401", "message": "Access denied due to invalid subscription key."}),
    (404, {"code": "NotFound", "message": "Batch batch_x was not found."}),
    (404, {"code": "DeploymentNotFound", "message": "The API deployment does not exist."}),
    (
        400,
        {
            "code": "invalidPayload",
            "message": "The request data is invalid for this operation.",
            "innererror": {"code": "ResponsibleAIPolicyViolation"},
        },
    ),
    (500, {"code": "internalFailure", "message": "Internal error. Please retry."}),
    (503, {"code": "serviceUnavailable", "message": "The service is currently not available."}),
]
"""Error bodies in Azure's shape (the spec's `ErrorResponse`, and codes the service sends)."""
CLASSES: Final = {
    400: aiobatches.BadRequestError,
    401: aiobatches.AuthenticationError,
    404: aiobatches.NotFoundError,
    429: aiobatches.RateLimitError,
    500: aiobatches.InternalServerError,
    503: aiobatches.InternalServerError,
}


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize(("status", "error"), AZURE_ERRORS)
async def test_azure_error_shapes_map_by_status(
    azure: FakeBatchesServer, style: str, status: int, error: dict[str, Any]
) -> None:
    """Azure's errors map and retry by status, with `.code`, the message, no type or param."""
    body = json.dumps({"error": error})
    azure.faults = dict.fromkeys(range(3), Fault.respond(status, body=body))
    async with azure_client(azure, style, max_retries=2) as client:
        with recorded_sleeps(), pytest.raises(aiobatches.APIStatusError) as caught:
            await client.list_batches().to_list()
    raised = caught.value
    assert type(raised) is CLASSES[status]
    assert (raised.status_code, raised.code, raised.type, raised.param) == (
        status,
        error["code"],
        None,
        None,
    )
    assert error["message"] in str(raised)
    assert raised.body == error
    retried = status in (429, 500, 503)
    assert len(azure.page_requests) == (3 if retried else 1)
    assert_style(azure.page_requests, style)


@pytest.mark.parametrize("style", STYLES)
async def test_injected_429_is_retried_then_lists(azure: FakeBatchesServer, style: str) -> None:
    """The fake's own 429, with a retry-after, is retried and the list completes."""
    azure.faults = {0: Fault.respond(429, {"retry-after": "1"})}
    async with azure_client(azure, style) as client:
        with recorded_sleeps() as delays:
            got = await client.list_batches().to_list()
    assert ids(got) == served_ids(azure)
    assert delays == [1.0]
    assert len(azure.page_requests) == 2


async def test_spec_example_structures() -> None:
    """The published spec's `get_batches` example body is read as a page, without error."""
    body = json.loads(SPEC_EXAMPLE.read_text())["responses"]["200"]["body"]
    parsed = parse_page(body)
    assert parsed.invalid == ()
    [batch] = parsed.batches
    assert batch.id == "batch_72a2792ef7d24ba7b82c7fe4a37e379f"
    assert batch.request_counts == aiobatches.BatchRequestCounts(500, 400, 100)
    assert (parsed.first_id, parsed.last_id) == (None, None)  # the example nests them in the batch


@pytest.mark.parametrize("style", STYLES)
async def test_spec_example_through_a_stream(azure: FakeBatchesServer, style: str) -> None:
    """Served as it is published, the example lists its one batch and the stream ends."""
    body = json.dumps(json.loads(SPEC_EXAMPLE.read_text())["responses"]["200"]["body"])
    azure.faults = {0: Fault.respond(200, body=body)}
    async with azure_client(azure, style) as client:
        got = await client.list_batches().to_list()
    assert ids(got) == ["batch_72a2792ef7d24ba7b82c7fe4a37e379f"]
    assert len(azure.page_requests) == 1


def failed_as_specified(line: object) -> dict[str, Any]:
    """A failed batch as the spec's `BatchErrors` / `BatchErrorData` define it (2024-10-21)."""
    return {
        "object": "batch",
        "id": "batch_failed_01",
        "endpoint": "/chat/completions",
        "errors": {
            "object": "list",
            "data": {
                "code": "invalid_json_line",
                "message": "This line is not parseable as valid JSON.",
                "param": None,
                "line": line,
            },
        },
        "input_file_id": "file-b4fa7277f3eb4722ac18b90f46102c3f",
        "completion_window": "24h",
        "status": "failed",
        "created_at": 1646126127,
        "failed_at": 1646126130,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
    }


async def test_spec_shaped_failed_batch_through_a_stream(azure: FakeBatchesServer) -> None:
    """A lone `errors.data` object with `"line": "1"` streams as a list of one error on line 1."""
    body = json.dumps({"object": "list", "data": [failed_as_specified("1")]})
    azure.faults = {0: Fault.respond(200, body=body)}
    async with azure_client(azure, "versioned") as client:
        [batch] = await client.list_batches().to_list()
    assert batch.errors == aiobatches.BatchErrors(
        "list",
        [
            aiobatches.BatchError(
                "invalid_json_line", 1, "This line is not parseable as valid JSON.", None
            )
        ],
    )


async def test_non_numeric_line_names_the_field_and_the_batch(azure: FakeBatchesServer) -> None:
    """A `line` that is no string of digits is a validation error naming the field and batch."""
    body = json.dumps({"object": "list", "data": [failed_as_specified("line one")]})
    azure.faults = {0: Fault.respond(200, body=body)}
    async with azure_client(azure, "versioned") as client:
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            await client.list_batches().to_list()
    assert caught.value.batch_id == "batch_failed_01"
    assert "batch_failed_01" in str(caught.value)
    assert "errors.data[0].line" in str(caught.value)
    assert "expected int or a string of digits, got str" in str(caught.value)


async def test_provider_tokens_are_redacted() -> None:
    """A token from the provider echoed by the server does not reach the error."""
    token = "aad-token-that-must-stay-secret"
    body = f'{{"error": {{"message": "token {token} expired", "code": "expired"}}}}'
    async with (
        FakeBatchesServer(azure=True, faults={0: Fault.respond(401, body=body)}) as server,
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


@pytest.mark.parametrize("flavour", ["openai", *STYLES])
async def test_cross_origin_redirect_sends_no_credential(
    azure: FakeBatchesServer, elsewhere: FakeBatchesServer, flavour: str
) -> None:
    """A redirect to another host is not followed: it raises the 3xx and that host sees nothing."""
    async with FakeBatchesServer(count=5, api_key=API_KEY) as openai_like:
        origin = openai_like if flavour == "openai" else azure
        path = PATHS.get(flavour, "/v1/batches")
        origin.faults = {0: Fault.respond(307, {"Location": f"{elsewhere.url}/batches"})}
        client: aiobatches.Client
        if flavour == "openai":
            client = aiobatches.Client(api_key=API_KEY, base_url=openai_like.url)
        else:
            client = azure_client(azure, flavour)
        async with client:
            with pytest.raises(aiobatches.APIStatusError) as caught:
                await client.list_batches().to_list()
    assert caught.value.status_code == 307
    assert "another origin" in str(caught.value)
    assert [request.path for request in origin.requests] == [path]
    assert elsewhere.requests == []


@pytest.mark.parametrize("style", STYLES)
async def test_token_provider_time_counts_within_the_attempt_timeout(
    azure: FakeBatchesServer, style: str
) -> None:
    """A provider that hangs makes the attempt time out; it cannot stall a listing for ever."""
    calls = 0

    async def slow_provider() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(30)
        return "token"

    async with azure_client(
        azure,
        style,
        api_key=None,
        azure_ad_token_provider=slow_provider,
        timeout=0.2,
        max_retries=1,
    ) as client:
        with recorded_sleeps(), pytest.raises(aiobatches.APITimeoutError):
            await client.list_batches().to_list()
    assert calls == 2  # the first attempt and its retry
    assert azure.page_requests == []
