"""A client's configuration: environment fallbacks, checks, and the choice of proxy.

A bad setting fails here, naming the setting and never echoing a credential,
instead of surfacing later as a raw aiohttp error. Proxies follow the
official SDK: `proxy=` wins, else `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY`
and `NO_PROXY` from the environment, read once when the client is made.
"""

from __future__ import annotations

import math
import os
import urllib.request
from collections.abc import Mapping
from typing import Final, TypedDict, TypeGuard

import aiohttp
from attrs import frozen
from yarl import URL

from ._errors import AIOBatchesError

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
DEFAULT_TIMEOUT: Final = 60.0
DEFAULT_MAX_RETRIES: Final = 2
DEFAULT_CONNECTION_LIMIT: Final = 100
DEFAULT_PAGE_SIZE: Final = 100
"""Every API's default page size; how large a page may be is each dialect's `max_limit`."""


class SharedOptions(TypedDict, total=False):
    """The keyword settings every client takes besides its key and URL, as
    `AnthropicClient` takes them."""

    session: aiohttp.ClientSession | None
    timeout: float | aiohttp.ClientTimeout
    max_retries: int
    connection_limit: int
    default_headers: Mapping[str, str] | None
    default_query: Mapping[str, str] | None
    proxy: str | None


class ClientOptions(SharedOptions, total=False):
    """`Client`'s keyword settings besides the key and URL, as `AzureClient` and the
    one-shot `aiobatches.list_batches` take them: OpenAI's headers besides the rest."""

    organization: str | None
    project: str | None


def check_options(
    owner: str,
    options: Mapping[str, object],
    names: frozenset[str] = ClientOptions.__optional_keys__,
) -> None:
    """Refuse a keyword setting `names` does not hold, as a signature would: a misspelt
    `timout=` never passes silently through `**client_kwargs`."""
    unknown = sorted(options.keys() - names)
    if unknown:
        raise TypeError(f"{owner}() got an unexpected keyword argument {unknown[0]!r}")


@frozen
class OpenAISettings:
    """Where and as whom a `Client` lists, after environment fallbacks."""

    api_key: str
    base_url: URL
    organization: str | None
    project: str | None


def openai_settings(
    api_key: str | None, base_url: str | None, organization: str | None, project: str | None
) -> OpenAISettings:
    """Arguments, else `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID`, `OPENAI_PROJECT_ID`."""
    return OpenAISettings(
        api_key=_api_key(api_key, "OPENAI_API_KEY"),
        base_url=_base_url(base_url, "OPENAI_BASE_URL", DEFAULT_BASE_URL),
        organization=organization or os.environ.get("OPENAI_ORG_ID"),
        project=project or os.environ.get("OPENAI_PROJECT_ID"),
    )


def _api_key(given: str | None, variable: str) -> str:
    """The key given, else the one in `variable`; none at all is an error naming both."""
    key = given if given is not None else os.environ.get(variable)
    if not key:
        raise AIOBatchesError(
            f"No API key: pass api_key=... or set the {variable} environment variable."
        )
    return check_text("api_key", key, secret=True)


def _base_url(given: str | None, variable: str, default: str) -> URL:
    """The base URL given, else the one in `variable`, else the API's own."""
    return parse_base_url("base_url", given or os.environ.get(variable) or default)


ANTHROPIC_BASE_URL: Final = "https://api.anthropic.com"


@frozen
class AnthropicSettings:
    """Where and as whom an `AnthropicClient` lists, after environment fallbacks."""

    api_key: str
    base_url: URL
    """Without `/v1`, as Anthropic's SDK takes it: the client adds `/v1/messages/batches`."""


def anthropic_settings(api_key: str | None, base_url: str | None) -> AnthropicSettings:
    """Arguments, else `ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, Anthropic's own URL."""
    return AnthropicSettings(
        api_key=_api_key(api_key, "ANTHROPIC_API_KEY"),
        base_url=_base_url(base_url, "ANTHROPIC_BASE_URL", ANTHROPIC_BASE_URL),
    )


@frozen
class AzureSettings:
    """Where and with which credential an `AzureClient` lists, after environment fallbacks."""

    endpoint: URL
    """Without Azure's own `/openai` or `/openai/v1`: the client adds the API style's path."""
    api_version: str | None
    """None: Azure's v1 API, which takes no `api-version`."""
    api_key: str | None
    ad_token: str | None


def azure_settings(
    endpoint: str | None,
    api_version: str | None,
    api_key: str | None,
    ad_token: str | None,
    *,
    has_provider: bool,
) -> AzureSettings:
    """Arguments, else `AZURE_OPENAI_ENDPOINT`, `OPENAI_API_VERSION` (none at all: the v1
    API) and, when no credential is given at all, `AZURE_OPENAI_API_KEY` /
    `AZURE_OPENAI_AD_TOKEN`.

    An endpoint ending in `/openai/v1` (as Microsoft's v1 docs give it to the OpenAI SDK)
    asks for the v1 API: `OPENAI_API_VERSION` is then not used, and an `api_version`
    argument contradicts it (a ValueError). An empty or blank version, argument or
    variable, is no version: the v1 API.
    """
    endpoint = endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
    if not endpoint:
        raise AIOBatchesError(
            "No Azure endpoint: pass azure_endpoint=... or set AZURE_OPENAI_ENDPOINT."
        )
    base, names_v1 = _azure_base(parse_base_url("azure_endpoint", endpoint))
    version = _api_version(api_version)
    if names_v1:
        if api_version is not None and version is not None:
            raise ValueError(
                "api_version is for Azure's versioned API, but azure_endpoint ends in"
                " /openai/v1, the v1 API, which takes none: drop one of them"
            )
        version = None
    explicit = api_key or ad_token or has_provider
    key = api_key or (None if explicit else os.environ.get("AZURE_OPENAI_API_KEY"))
    token = ad_token or (None if explicit else os.environ.get("AZURE_OPENAI_AD_TOKEN"))
    if not (key or token or has_provider):
        raise AIOBatchesError(
            "No Azure credential: pass api_key, azure_ad_token or azure_ad_token_provider,"
            " or set AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN."
        )
    return AzureSettings(
        endpoint=base, api_version=version, api_key=key or None, ad_token=token or None
    )


_AZURE_V1_PATH: Final = ("openai", "v1")
_AZURE_PATHS: Final = (_AZURE_V1_PATH, ("openai",))


def _azure_base(endpoint: URL) -> tuple[URL, bool]:
    """The endpoint without Azure's own path at its end, and whether that path was the v1
    API's; any other path (an API Management prefix, say) is kept."""
    segments = endpoint.raw_path.rstrip("/").split("/")
    lowered = tuple(segment.lower() for segment in segments)
    for tail in _AZURE_PATHS:
        if lowered[-len(tail) :] == tail:
            kept = "/".join(segments[: -len(tail)])
            return endpoint.with_path(kept, encoded=True), tail == _AZURE_V1_PATH
    return endpoint, False


def _api_version(argument: object) -> str | None:
    """The argument, else `OPENAI_API_VERSION`, without surrounding spaces; empty or blank
    is no version (so `api_version=""` chooses the v1 API whatever the environment says)."""
    raw = argument if argument is not None else os.environ.get("OPENAI_API_VERSION")
    if raw is None:
        return None
    return check_text("api_version", raw).strip() or None


_CONTROL: Final = frozenset(chr(code) for code in (*range(0x20), 0x7F))
_PROXY_SCHEMES: Final = ("http", "https")
_NOT_IDS: Final = frozenset({"", ".", ".."})


def check_text(setting: str, value: object, *, secret: bool = False) -> str:
    """`value` as a header-safe `str`; the error names `setting`, and shows no secret."""
    if not isinstance(value, str):
        raise TypeError(f"{setting} must be a str, got {type(value).__name__}")
    if not _CONTROL.isdisjoint(value):
        hint = " (a trailing newline, as read from a file? strip it)" if secret else ""
        raise ValueError(f"{setting} contains a control character{hint}")
    return value


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Extra headers as a dict; names and values must be header-safe text."""
    checked: dict[str, str] = {}
    for name, value in (headers or {}).items():
        check_text("a default_headers name", name)
        if not name or ":" in name or " " in name:
            raise ValueError(f"default_headers has an invalid header name {name!r}")
        checked[name] = check_text(f"default_headers[{name!r}]", value, secret=True)
    return checked


def check_timeout(timeout: object) -> aiohttp.ClientTimeout:
    """Seconds per attempt (or a `ClientTimeout`) whose limits are finite and positive."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        limits = (
            timeout.total,
            timeout.connect,
            timeout.sock_read,
            timeout.sock_connect,
        )
        if all(limit is None or _finite_positive(limit) for limit in limits):
            return timeout
        raise ValueError("timeout: every limit of the ClientTimeout must be finite and positive")
    if not _finite_positive(timeout):
        raise ValueError(f"timeout must be a finite, positive number of seconds, got {timeout!r}")
    return aiohttp.ClientTimeout(total=float(timeout))  # type: ignore[arg-type]


def check_count(setting: str, value: object, *, low: int = 0, high: int | None = None) -> int:
    """A whole number from `low` (up to `high`); a `bool` is not one."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bounds = f">= {low}" if high is None else f"from {low} to {high}"
        raise ValueError(f"{setting} must be an int {bounds}, got {value!r}")
    return value


def check_seconds(setting: str, value: object) -> float:
    """Finite seconds, 0 or more."""
    if not _seconds(value) or value < 0:
        raise ValueError(f"{setting} must be finite seconds >= 0, got {value!r}")
    return float(value)


def parse_base_url(setting: str, raw: object) -> URL:
    """An absolute http(s) URL without credentials (the key goes in headers, never the URL),
    query or fragment (the client adds paths to it, which would drop them unseen)."""
    text = check_text(setting, raw)
    try:
        url = URL(text.rstrip("/"))
    except (ValueError, TypeError):
        raise ValueError(f"{setting} is not a URL") from None
    if url.user is not None or url.password is not None:
        raise ValueError(f"{setting} must not contain credentials; pass them as api_key")
    if url.raw_query_string or url.raw_fragment:
        # Not shown: a query is where a key would be pasted.
        raise ValueError(
            f"{setting} must not have a query or fragment; pass query parameters as default_query"
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{setting} must be an absolute http(s) URL, got {text!r}")
    return url


def check_batch_id(setting: str, value: object) -> str:
    """A batch id that is one path segment: not empty, no `/`, and not `.` or `..`, which
    URL normalisation would turn into the parent path."""
    if not isinstance(value, str):
        raise TypeError(f"{setting} must be a str, got {type(value).__name__}")
    if value in _NOT_IDS or "/" in check_text(setting, value):
        raise ValueError(f"{setting} must be a batch id such as 'batch_abc123', got {value!r}")
    return value


def parse_proxy(raw: object) -> URL:
    """An http(s) proxy URL; it may carry the proxy's own credentials, never shown."""
    text = check_text("proxy", raw, secret=True)
    try:
        url = URL(text)
    except (ValueError, TypeError):
        raise ValueError("proxy is not a URL") from None
    if url.scheme not in _PROXY_SCHEMES or not url.host:
        raise ValueError("proxy must be an absolute http:// or https:// URL")
    return url


class Proxies:
    """Which proxy, if any, a request to a URL goes through."""

    def __init__(self, explicit: URL | None, environment: Mapping[str, str] | None) -> None:
        self._explicit = explicit
        self._environment = dict(environment or {})

    @classmethod
    def choose(cls, proxy: object, *, owned_session: bool) -> Proxies:
        """`proxy=` if given; else the environment's, for a session the client owns."""
        if proxy is not None:
            return cls(parse_proxy(proxy), None)
        return cls(None, urllib.request.getproxies_environment() if owned_session else None)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Proxy passwords, to redact like the API key."""
        urls = [self._explicit] if self._explicit else []
        for raw in self._environment.values():
            try:
                urls.append(URL(raw))
            except (ValueError, TypeError):
                continue
        return tuple(url.password for url in urls if url.password)

    def for_url(self, url: URL) -> URL | None:
        """The proxy for `url`: explicit, else by scheme unless `NO_PROXY` lists the host."""
        if self._explicit is not None:
            return self._explicit
        env = self._environment
        if not env or url.host is None:
            return None
        raw = env.get(url.scheme) or env.get("all")
        # proxy_bypass_environment is public in urllib.request, but typeshed omits it.
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if not raw or bypass(url.host, env):
            return None
        try:
            proxy = URL(raw if "://" in raw else f"http://{raw}")
        except (ValueError, TypeError):
            return None
        return proxy if proxy.scheme in _PROXY_SCHEMES and proxy.host else None


def _seconds(value: object) -> TypeGuard[int | float]:
    """A finite number of seconds (a `bool` is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _finite_positive(value: object) -> bool:
    return _seconds(value) and value > 0
