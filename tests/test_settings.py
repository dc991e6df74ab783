"""Bad settings fail at construction, clearly and without echoing secrets; misuse is named."""

from __future__ import annotations

import asyncio
import gc
import math
import re
import warnings
from typing import Any, Final

import aiohttp
import pytest
from _helpers import API_KEY, AZURE_VERSION, MOCK_BASE, ids
from yarl import URL

import aiobatches
from aiobatches.testing import FakeBatchesServer


def refused(error: BaseException) -> str:
    """Everything a user could see of a construction error."""
    return f"{error} {error!r} {error.args!r}"


# --- credentials and headers with control characters ----------------------------------------------

KEY_SECRET: Final = "sk-abc123"


@pytest.mark.parametrize(
    "key",
    [f"{KEY_SECRET}\n", f"{KEY_SECRET}\r\n", f"sk-abc\x00{KEY_SECRET}", f"{KEY_SECRET}\x1b[2J"],
    ids=["newline", "crlf", "nul", "escape"],
)
def test_api_key_with_control_characters_is_refused(key: str) -> None:
    """A key with a newline or other control character is a ValueError naming api_key only."""
    with pytest.raises((ValueError, TypeError), match="api_key") as caught:
        aiobatches.Client(api_key=key, base_url=MOCK_BASE)
    assert KEY_SECRET not in refused(caught.value)


def test_api_key_from_the_environment_with_a_newline_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OPENAI_API_KEY with a trailing newline is refused, naming the key, not showing it."""
    monkeypatch.setenv("OPENAI_API_KEY", f"{KEY_SECRET}\n")
    with pytest.raises((ValueError, TypeError), match=r"(?i)api_key") as caught:
        aiobatches.Client(base_url=MOCK_BASE)
    assert KEY_SECRET not in refused(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "secret"),
    [
        ({"api_key": f"{KEY_SECRET}\n"}, KEY_SECRET),
        ({"azure_ad_token": f"{KEY_SECRET}\r\n"}, KEY_SECRET),
    ],
    ids=["api_key", "azure_ad_token"],
)
def test_azure_credentials_with_control_characters_are_refused(
    kwargs: dict[str, str], secret: str
) -> None:
    """AzureClient refuses a key or token with control characters, naming it, never showing it."""
    name = next(iter(kwargs))
    with pytest.raises((ValueError, TypeError), match=name) as caught:
        aiobatches.AzureClient(azure_endpoint=MOCK_BASE, api_version=AZURE_VERSION, **kwargs)  # type: ignore[arg-type]
    assert secret not in refused(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"organization": "org-1\r\nX-Injected: 1"}, "organization"),
        ({"project": "proj_1\r\nX-Injected: 1"}, "project"),
        ({"default_headers": {"X-Team": "data\r\nX-Injected: 1"}}, "default_headers"),
    ],
    ids=["organization", "project", "default_headers"],
)
def test_header_values_with_crlf_are_refused(kwargs: dict[str, Any], named: str) -> None:
    """An organization, project or default header with CR LF (header injection) is refused."""
    with pytest.raises((ValueError, TypeError), match=named):
        aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE, **kwargs)


def test_credential_in_a_default_header_is_not_echoed() -> None:
    """A default header carrying a credential and a newline is refused without showing it."""
    with pytest.raises((ValueError, TypeError), match="default_headers") as caught:
        aiobatches.Client(
            api_key=API_KEY, base_url=MOCK_BASE, default_headers={"api-key": f"{KEY_SECRET}\n"}
        )
    assert KEY_SECRET not in refused(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"api_key": 12345}, "api_key"),
        ({"organization": 7}, "organization"),
        ({"project": b"proj_1"}, "project"),
        ({"default_headers": {"X-Team": 1}}, "default_headers"),
        ({"base_url": 8080}, "base_url"),
        ({"proxy": 3128}, "proxy"),
    ],
    ids=["api_key", "organization", "project", "default_headers", "base_url", "proxy"],
)
def test_settings_that_are_not_text_are_type_errors(kwargs: dict[str, Any], named: str) -> None:
    """A number or bytes where a str belongs is a TypeError naming the setting."""
    kwargs.setdefault("api_key", API_KEY)
    with pytest.raises(TypeError, match=named):
        aiobatches.Client(**kwargs)


@pytest.mark.parametrize("name", ["X Team", "X-Team:", ""], ids=["space", "colon", "empty"])
def test_invalid_header_names_are_refused(name: str) -> None:
    """A default header whose name no HTTP header can have is a ValueError naming it."""
    with pytest.raises(ValueError, match="default_headers has an invalid header name"):
        aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE, default_headers={name: "data"})


# --- timeouts, base URLs, proxies, retries ------------------------------------------------------


@pytest.mark.parametrize(
    "timeout",
    [
        math.inf,
        math.nan,
        0,
        -1,
        aiohttp.ClientTimeout(total=math.inf),
        aiohttp.ClientTimeout(total=math.nan),
        aiohttp.ClientTimeout(total=-1),
    ],
    ids=repr,
)
def test_timeout_not_finite_and_positive_is_refused(timeout: float | aiohttp.ClientTimeout) -> None:
    """A timeout that is infinite, NaN, zero or negative (plain or ClientTimeout) is refused."""
    with pytest.raises((ValueError, TypeError), match="timeout"):
        aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE, timeout=timeout)


@pytest.mark.parametrize(
    ("base_url", "secret"),
    [
        ("https://user:s3cr3t-pw@api.example.com/v1", "s3cr3t-pw"),
        ("https://tok3n-only-user@api.example.com/v1", "tok3n-only-user"),
    ],
    ids=["user and password", "user only"],
)
def test_base_url_with_credentials_is_refused(base_url: str, secret: str) -> None:
    """Credentials inside base_url are refused at construction, without echoing them."""
    with pytest.raises((ValueError, TypeError), match="base_url") as caught:
        aiobatches.Client(api_key=API_KEY, base_url=base_url)
    assert secret not in refused(caught.value)


def test_base_url_with_credentials_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OPENAI_BASE_URL with credentials is refused too, naming the setting, not the password."""
    monkeypatch.setenv("OPENAI_BASE_URL", "https://user:s3cr3t-pw@api.example.com/v1")
    with pytest.raises((ValueError, TypeError), match=r"(?i)base_url") as caught:
        aiobatches.Client(api_key=API_KEY)
    assert "s3cr3t-pw" not in refused(caught.value)


@pytest.mark.parametrize("setting", ["base_url", "azure_endpoint"])
def test_url_that_does_not_parse_is_refused(setting: str) -> None:
    """A base URL or Azure endpoint that is no URL at all is a ValueError naming the setting."""
    with pytest.raises(ValueError, match=f"{setting} is not a URL"):
        if setting == "base_url":
            aiobatches.Client(api_key=API_KEY, base_url="https://[api.example")
        else:
            aiobatches.AzureClient(
                azure_endpoint="https://[x.openai", api_version=AZURE_VERSION, api_key=API_KEY
            )


@pytest.mark.parametrize(
    "tail", ["?api-key=s3cr3t-pw", "/?api-version=s3cr3t-pw", "#s3cr3t-pw", "/openai/v1?s3cr3t-pw"]
)
@pytest.mark.parametrize("setting", ["base_url", "azure_endpoint"])
def test_url_with_a_query_or_fragment_is_refused(setting: str, tail: str) -> None:
    """A query or fragment on a base URL or Azure endpoint is a ValueError naming the setting
    (a path is added to the URL, which would drop them unseen); it is not echoed."""
    with pytest.raises(ValueError, match=f"{setting} must not have a query or fragment") as caught:
        if setting == "base_url":
            aiobatches.Client(api_key=API_KEY, base_url=f"https://api.example.test/v1{tail}")
        else:
            aiobatches.AzureClient(
                azure_endpoint=f"https://x.openai.azure.com{tail}", api_key=API_KEY
            )
    assert "s3cr3t-pw" not in refused(caught.value)


def test_azure_endpoint_with_a_query_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AZURE_OPENAI_ENDPOINT with a query is refused too, naming azure_endpoint."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://x.openai.azure.com/?api-version=preview")
    with pytest.raises(ValueError, match="azure_endpoint must not have a query or fragment"):
        aiobatches.AzureClient(api_key=API_KEY)


@pytest.mark.parametrize(
    "version", [f"{AZURE_VERSION}\n", "\t", f"{AZURE_VERSION}\x1b[2J", "\r\n"], ids=repr
)
@pytest.mark.parametrize("source", ["argument", "environment"])
def test_api_version_with_control_characters_is_refused(
    monkeypatch: pytest.MonkeyPatch, source: str, version: str
) -> None:
    """An API version with a control character, argument or variable, is a ValueError naming it."""
    if source == "environment":
        monkeypatch.setenv("OPENAI_API_VERSION", version)
    with pytest.raises(ValueError, match="api_version contains a control character"):
        aiobatches.AzureClient(
            azure_endpoint="https://x.openai.azure.com",
            api_version=version if source == "argument" else None,
            api_key=API_KEY,
        )


def test_api_version_that_is_not_text_is_a_type_error() -> None:
    """A number where the API version belongs is a TypeError naming api_version."""
    with pytest.raises(TypeError, match="api_version must be a str"):
        aiobatches.AzureClient(
            azure_endpoint="https://x.openai.azure.com",
            api_version=20241021,  # type: ignore[arg-type]
            api_key=API_KEY,
        )


@pytest.mark.parametrize(
    ("proxy", "says"),
    [
        ("http://user:s3cr3t-pw@[proxy", "proxy is not a URL"),
        ("socks5://proxy.internal:1080", "proxy must be an absolute http:// or https:// URL"),
        ("proxy.internal:3128", "proxy must be an absolute http:// or https:// URL"),
    ],
    ids=["unparsable", "socks", "no scheme"],
)
def test_proxy_that_is_not_an_http_url_is_refused(proxy: str, says: str) -> None:
    """An explicit proxy must be an absolute http(s) URL; the error never shows its password."""
    with pytest.raises(ValueError, match=re.escape(says)) as caught:
        aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE, proxy=proxy)
    assert "s3cr3t-pw" not in refused(caught.value)


def test_after_that_is_not_an_id_is_a_type_error() -> None:
    """`after` must be a batch id: an int is refused before any request."""
    client = aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE)
    with pytest.raises(TypeError, match="after must be a batch id"):
        client.list_batches(after=12345)  # type: ignore[arg-type]


def test_max_retries_true_is_refused() -> None:
    """max_retries=True is not taken for 1."""
    with pytest.raises((ValueError, TypeError), match="max_retries"):
        aiobatches.Client(api_key=API_KEY, base_url=MOCK_BASE, max_retries=True)


async def test_unknown_on_invalid_is_refused_before_any_request() -> None:
    """on_invalid other than "raise" or "skip" is a ValueError naming it, before any request."""
    async with (
        FakeBatchesServer(count=5) as server,
        aiobatches.Client(api_key=API_KEY, base_url=server.url) as client,
    ):
        with pytest.raises(ValueError, match="on_invalid"):
            client.list_batches(on_invalid="ignore")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="on_invalid"):  # a policy is a word, not a function
            client.list_batches(on_invalid=lambda _: "raise")  # type: ignore[arg-type]
    assert server.requests == []


def test_a_misspelt_setting_is_refused_by_every_client() -> None:
    """`AzureClient(timout=5)` is a TypeError naming the word, as `Client(timout=5)` is,
    never a setting silently dropped on its way through `**client_kwargs`."""
    settings: dict[str, Any] = {"timout": 5}
    with pytest.raises(TypeError, match="timout"):
        aiobatches.Client(api_key=API_KEY, **settings)
    with pytest.raises(TypeError, match=r"AzureClient\(\) got an unexpected .* 'timout'"):
        aiobatches.AzureClient(azure_endpoint=MOCK_BASE, api_key=API_KEY, **settings)
    with pytest.raises(TypeError, match="base_url"):  # Azure's is `azure_endpoint`
        aiobatches.AzureClient(azure_endpoint=MOCK_BASE, api_key=API_KEY, base_url=MOCK_BASE)  # type: ignore[call-arg]


# --- a borrowed session closed under the client ------------------------------------------------


async def test_borrowed_session_closed_mid_stream_is_a_clear_error() -> None:
    """Closing a borrowed session between pages gives an AIOBatchesError saying so."""
    got: list[aiobatches.Batch] = []
    async with FakeBatchesServer(count=30) as server:
        session = aiohttp.ClientSession()
        try:
            async with aiobatches.Client(
                api_key=API_KEY, base_url=server.url, session=session
            ) as client:
                with pytest.raises(aiobatches.AIOBatchesError) as caught:
                    async for batch in client.list_batches(limit=10, prefetch=0):
                        got.append(batch)
                        if len(got) == 10:
                            await session.close()
        finally:
            await session.close()
        expected = [batch["id"] for batch in server.batches]
    assert ids(got) == expected[:10]
    message = str(caught.value).lower()
    assert "session" in message
    assert "closed" in message
    assert len(server.page_requests) == 1


# --- a client carried into a second event loop ---------------------------------------------------


def test_client_used_in_a_second_event_loop_says_so() -> None:
    """A client reused in a second asyncio.run says it belongs to another loop, and closes there."""

    async def first() -> tuple[aiobatches.Client, int]:
        async with FakeBatchesServer(count=5) as server:
            client = aiobatches.Client(api_key=API_KEY, base_url=server.url)
            assert len(await client.list_batches().to_list()) == 5
            port = URL(server.url).port
            assert port is not None
            return client, port

    client, port = asyncio.run(first())

    async def second(client: aiobatches.Client) -> None:
        async with FakeBatchesServer(count=5, port=port):
            await client.list_batches().to_list()

    with pytest.raises((RuntimeError, aiobatches.AIOBatchesError)) as caught:
        asyncio.run(second(client))
    message = str(caught.value)
    # The session the first loop left open can no longer be closed properly: closing the
    # client lets it go, and its ResourceWarning must not land on another test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.run(client.aclose())
        assert client.is_closed
        del client, caught
        gc.collect()
    assert re.search(r"\b(another|different|other)\b.*\bloop\b", message), message


# --- an Azure token provider that returns nonsense -----------------------------------------------


def returns_none() -> Any:
    """A provider that forgot to return its token."""
    return None


def returns_empty() -> Any:
    """A provider whose token cache was empty."""
    return ""


async def returns_int() -> Any:
    """An async provider returning something that is not a token at all."""
    return 42


def returns_a_line() -> Any:
    """A provider that read its token from a file, trailing newline included."""
    return "aad-token-from-a-file\n"


def raises() -> Any:
    """A provider whose identity service is down."""
    raise ConnectionError("the identity service is unreachable")


@pytest.mark.parametrize(
    "provider", [returns_none, returns_empty, returns_int, returns_a_line, raises]
)
async def test_token_provider_returning_nonsense_is_a_clear_error(provider: Any) -> None:
    """A provider returning no usable token, or raising, is a clear error, and nothing is sent."""
    async with (
        FakeBatchesServer(count=5, azure=True, azure_api_version=AZURE_VERSION) as azure,
        aiobatches.AzureClient(
            azure_endpoint=azure.url, api_version=AZURE_VERSION, azure_ad_token_provider=provider
        ) as client,
    ):
        with pytest.raises(aiobatches.AIOBatchesError, match="provider") as caught:
            await client.list_batches().to_list()
    assert not isinstance(caught.value, TypeError)
    assert "aad-token-from-a-file" not in refused(caught.value)
    assert not any(
        request.headers.get("Authorization", "").startswith("Bearer") for request in azure.requests
    )
