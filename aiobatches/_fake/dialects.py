"""The API shapes the fake server speaks: one small object per API, naming what differs.

A dialect says where the batches are served (its paths, and what its base URL
ends in), which credentials it takes, how a page is asked for (the cursor's
name, the limit's bounds) and refused, and how pages, batches and errors are
written. The server's engine takes one and decides nothing by API itself:
`OpenAIDialect` is `/v1/batches`; `AzureDialect` is Azure OpenAI's two styles.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import orjson
from attrs import frozen

from .. import _synthetic
from .._body import dumps
from .living import Page

AZURE_API_VERSION: Final = "2024-10-21"
"""The latest GA version of Azure OpenAI's data-plane API with batches."""
_AZURE_VERSIONED: Final = "/openai/batches"
_AZURE_V1: Final = "/openai/v1/batches"
_AZURE_CODES: Final = {400: "BadRequest", 401: "401", 404: "NotFound"}
"""The `code` of Azure's errors by status; other statuses send the status itself."""
_AZURE_DENIED: Final = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)


@frozen
class Refusal:
    """An error answer decided on: its status, and what its body says."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None


@frozen
class PageQuery:
    """A list request's page: below the batch with id `after` (None: from the top)."""

    after: str | None
    limit: int


class Dialect(abc.ABC):
    """What one API shape names; the fake server's engine asks it whatever differs."""

    url_suffix: ClassVar[str]
    """What the base URL handed to a client ends in, after the host and port."""
    list_paths: ClassVar[tuple[str, ...]]
    """The paths that list batches; one batch is retrieved at `{path}/{id}`."""
    request_id_header: ClassVar[str]
    """The header that carries each answer's request id."""
    poll_after_header: ClassVar[str]
    """The header that carries the server's polling hint, when one is set."""
    cursor: ClassVar[str] = "after"
    """The query parameter naming the batch a page starts below."""
    default_limit: ClassVar[int] = 20
    min_limit: ClassVar[int] = 1
    max_limit: ClassVar[int] = 100

    def lists(self, path: str) -> bool:
        """Whether a request to `path` is a list request (whatever its method)."""
        return path in self.list_paths

    def retrieves(self, path: str) -> bool:
        """Whether a request to `path` is a retrieval: to any path below a list path."""
        return path.startswith(tuple(listed + "/" for listed in self.list_paths))

    def page_query(self, path: str, query: Mapping[str, str]) -> PageQuery | Refusal:
        """The page a list request asks for, or the 400 for a query this API refuses."""
        refusal = self.check_query(path, query)
        if refusal is not None:
            return refusal
        raw = query.get("limit")
        if raw is None:
            return PageQuery(query.get(self.cursor), self.default_limit)
        try:
            limit = int(raw)
        except ValueError:
            return self.bad_limit(raw, None)
        if not self.min_limit <= limit <= self.max_limit:
            return self.bad_limit(raw, limit)
        return PageQuery(query.get(self.cursor), limit)

    def check_query(self, path: str, query: Mapping[str, str]) -> Refusal | None:
        """The 400 for a query parameter the path never takes, if any (besides the page's)."""
        return None

    def batch(self, path: str, body: bytes) -> bytes:
        """One batch as `path` answers it, from its body as OpenAI sends it."""
        return body

    @abc.abstractmethod
    def check_auth(self, headers: Mapping[str, str], key: str) -> Refusal | None:
        """The 401 for headers that do not carry `key` as this API takes it, if any."""

    @abc.abstractmethod
    def bad_limit(self, raw: str, limit: int | None) -> Refusal:
        """The 400 for a `limit` that is not a whole number (`limit` None) or is out of bounds."""

    @abc.abstractmethod
    def unknown_cursor(self, batch_id: str) -> Refusal:
        """The 400 for a cursor naming no batch served."""

    @abc.abstractmethod
    def no_batch(self, batch_id: str) -> Refusal:
        """The 404 for retrieving a batch not served."""

    @abc.abstractmethod
    def not_found(self, method: str, path: str) -> Refusal:
        """The 404 for a path this API does not serve."""

    @abc.abstractmethod
    def injected(self, status: int) -> Refusal:
        """The error an injected status fault answers with."""

    @abc.abstractmethod
    def page(self, path: str, page: Page) -> bytes:
        """A list answer: the page's batches in this API's envelope."""

    @abc.abstractmethod
    def claiming_more(self, path: str) -> bytes:
        """A list answer with no batches that still claims more (a broken server's)."""

    @abc.abstractmethod
    def error_body(self, refusal: Refusal) -> bytes:
        """An error answer's body, in this API's shape."""


class OpenAIDialect(Dialect):
    """OpenAI's `/v1/batches`: a Bearer key, `after` and `limit` 1..100, OpenAI's envelope
    and errors."""

    url_suffix = "/v1"
    list_paths: ClassVar[tuple[str, ...]] = ("/v1/batches",)
    request_id_header = "x-request-id"
    poll_after_header = "openai-poll-after-ms"

    def check_auth(self, headers: Mapping[str, str], key: str) -> Refusal | None:
        header = headers.get("Authorization")
        if header is None:
            return Refusal(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if header == f"Bearer {key}":
            return None
        return Refusal(
            401,
            f"Incorrect API key provided: {_mask(header.removeprefix('Bearer '))}. "
            "You can find your API key at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def bad_limit(self, raw: str, limit: int | None) -> Refusal:
        if limit is None:
            message = f"expected an integer, but got '{raw}' instead."
            return Refusal(400, f"Invalid 'limit': {message}", "limit", "invalid_type")
        if limit < self.min_limit:
            message = (
                f"integer below minimum value. Expected a value >= {self.min_limit}, "
                f"but got {limit} instead."
            )
            return Refusal(400, f"Invalid 'limit': {message}", "limit", "integer_below_min_value")
        message = (
            f"integer above maximum value. Expected a value <= {self.max_limit}, "
            f"but got {limit} instead."
        )
        return Refusal(400, f"Invalid 'limit': {message}", "limit", "integer_above_max_value")

    def unknown_cursor(self, batch_id: str) -> Refusal:
        return Refusal(
            400, f"Invalid '{self.cursor}': no batch with id '{batch_id}' was found.", self.cursor
        )

    def no_batch(self, batch_id: str) -> Refusal:
        return Refusal(404, f"No batch found with id '{batch_id}'.")

    def not_found(self, method: str, path: str) -> Refusal:
        return Refusal(404, f"Invalid URL ({method} {path})")

    def injected(self, status: int) -> Refusal:
        return Refusal(status, f"Injected fault: {status}.", code="server_error")

    def page(self, path: str, page: Page) -> bytes:
        envelope = {
            "object": "list",
            "first_id": page.ids[0] if page.ids else None,
            "last_id": page.ids[-1] if page.ids else None,
            "has_more": page.has_more,
        }
        return b'{"data":[' + b",".join(page.bodies) + b"]," + dumps(envelope)[1:]

    def claiming_more(self, path: str) -> bytes:
        return b'{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":true}'

    def error_body(self, refusal: Refusal) -> bytes:
        kind = "server_error" if refusal.code == "server_error" else "invalid_request_error"
        error = {
            "message": refusal.message,
            "type": kind,
            "param": refusal.param,
            "code": refusal.code,
        }
        return orjson.dumps({"error": error})


class AzureDialect(OpenAIDialect):
    """Azure OpenAI's endpoint, in both of its styles at once, each with list and retrieve.

    `/openai/batches` requires `api-version` to be `api_version`, and answers in the
    shapes of Azure's published REST spec: a list of only `object` and `data`, and a
    failed batch's `errors.data` as its first error alone, whose `line` is a string.
    `/openai/v1/batches` refuses any `api-version` and answers in OpenAI's shapes. Both
    take the key as `api-key` or Bearer, and answer errors as `{"error": {"code",
    "message"}}`, with Azure's codes.
    """

    url_suffix = ""
    list_paths: ClassVar[tuple[str, ...]] = (_AZURE_VERSIONED, _AZURE_V1)

    def __init__(self, api_version: str = AZURE_API_VERSION) -> None:
        self.api_version = api_version
        """The `api-version` that `/openai/batches` accepts."""

    def check_auth(self, headers: Mapping[str, str], key: str) -> Refusal | None:
        if headers.get("api-key") == key or headers.get("Authorization") == f"Bearer {key}":
            return None
        return Refusal(401, _AZURE_DENIED)

    def check_query(self, path: str, query: Mapping[str, str]) -> Refusal | None:
        """The 400 for an `api-version` the path does not take: the versioned path takes
        only its own, the v1 path none at all."""
        version = query.get("api-version")
        if not _versioned(path):
            if version is None:
                return None
            return Refusal(400, "api-version query parameter is not allowed when using /v1 path")
        if version == self.api_version:
            return None
        return Refusal(400, "API version not supported")

    def not_found(self, method: str, path: str) -> Refusal:
        return Refusal(404, "Resource not found")

    def batch(self, path: str, body: bytes) -> bytes:
        return dumps(_as_published(body)) if _versioned(path) else body

    def page(self, path: str, page: Page) -> bytes:
        if not _versioned(path):
            return super().page(path, page)
        return dumps({"object": "list", "data": [_as_published(body) for body in page.bodies]})

    def error_body(self, refusal: Refusal) -> bytes:
        code = _AZURE_CODES.get(refusal.status, str(refusal.status))
        return orjson.dumps({"error": {"code": code, "message": refusal.message}})


def _versioned(path: str) -> bool:
    """Whether `path` is Azure's versioned one, which answers in its spec's shapes."""
    return path.startswith(_AZURE_VERSIONED)


def _as_published(body: bytes) -> dict[str, Any]:
    """A batch as Azure's published spec shapes it, its integers kept exact."""
    batch: dict[str, Any] = json.loads(body)
    return _synthetic.as_azure_publishes(batch)


def _mask(key: str) -> str:
    """Show a wrong key the way OpenAI does: a few characters at each end."""
    return f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
