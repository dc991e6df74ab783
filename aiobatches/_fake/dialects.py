"""The API shapes the fake server speaks: one small object per API, naming what differs.

A dialect says where its batches are served (its path, and what its base URL
ends in), which credentials it takes, how a page is asked for (the cursor's
name, the limit's bounds) and refused, and how pages, batches and errors are
written. The server's engine takes a `Dialects`, one or more dialects below one
base URL, routes each path to its own, and decides nothing by API itself:
`OpenAIDialect` is `/v1/batches`; Azure OpenAI's two styles are
`AzureVersionedDialect` (`/openai/batches?api-version=...`) and `AzureV1Dialect`
(`/openai/v1/batches`). A dialect with a base URL of its own (Anthropic's, in
`anthropic.py`) is served beside them, below the same host and port.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import orjson
from attrs import field, frozen

from .. import _synthetic
from .._body import dumps
from .living import Page

AZURE_API_VERSION: Final = "2024-10-21"
"""The latest GA version of Azure OpenAI's data-plane API with batches."""


@frozen
class Refusal:
    """An error answer decided on: its status, and what its body says."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    kind: str | None = None
    """What kind of error it is, for APIs whose errors say (OpenAI's `type`); None: the
    dialect's kind for an error in the request."""


@frozen
class PageQuery:
    """A list request's page: below the batch with id `after` (None: from the top), or
    with `before`, the batches just above that one."""

    after: str | None
    limit: int
    before: str | None = None


class Dialect(abc.ABC):
    """What one API shape names; the fake server's engine asks it whatever differs."""

    url_suffix: ClassVar[str]
    """What the base URL handed to a client ends in, after the host and port."""
    list_path: ClassVar[str]
    """The path that lists batches; one batch is retrieved at `{list_path}/{id}`."""
    request_id_header: ClassVar[str]
    """The header that carries each answer's request id."""
    poll_after_header: ClassVar[str | None]
    """The header that carries the server's polling hint, when one is set; None: the API
    has no such hint."""
    cursor: ClassVar[str] = "after"
    """The query parameter naming the batch a page starts below."""
    before_cursor: ClassVar[str | None] = None
    """The query parameter naming the batch a page ends just above; None: pages go one way."""
    default_limit: ClassVar[int] = 20
    min_limit: ClassVar[int] = 1
    max_limit: ClassVar[int] = 100

    def lists(self, path: str) -> bool:
        """Whether a request to `path` is a list request (whatever its method)."""
        return path == self.list_path

    def retrieves(self, path: str) -> bool:
        """Whether a request to `path` is a retrieval: to any path below the list path."""
        return path.startswith(self.list_path + "/")

    def page_query(self, query: Mapping[str, str]) -> PageQuery | Refusal:
        """The page a list request asks for, or the 400 for a query this API refuses."""
        refusal = self.check_query(query)
        if refusal is not None:
            return refusal
        raw = query.get("limit")
        limit = self.default_limit
        if raw is not None:
            try:
                limit = int(raw)
            except ValueError:
                return self.bad_limit(raw, None)
            if not self.min_limit <= limit <= self.max_limit:
                return self.bad_limit(raw, limit)
        after = query.get(self.cursor)
        before = None if self.before_cursor is None else query.get(self.before_cursor)
        if after is not None and before is not None:
            return Refusal(400, f"{self.cursor} and {self.before_cursor} cannot both be given")
        return PageQuery(after, limit, before)

    def check_query(self, query: Mapping[str, str]) -> Refusal | None:
        """The 400 for a query parameter this API never takes, if any (besides the page's)."""
        return None

    def check_headers(self, headers: Mapping[str, str]) -> Refusal | None:
        """The refusal of headers this API requires whatever the key (a version), if any."""
        return None

    def held_ids(self, batch_id: str) -> tuple[str, ...]:
        """The ids a batch this API names `batch_id` may be held by, the likeliest first."""
        return (batch_id,)

    def batch(self, body: bytes, rank: int = 0) -> bytes:
        """One batch as this API answers it, from its body as OpenAI sends it, and its
        `rank` among the batches created before it in the same second."""
        return body

    @abc.abstractmethod
    def check_auth(self, headers: Mapping[str, str], key: str) -> Refusal | None:
        """The 401 for headers that do not carry `key` as this API takes it, if any."""

    @abc.abstractmethod
    def bad_limit(self, raw: str, limit: int | None) -> Refusal:
        """The 400 for a `limit` that is not a whole number (`limit` None) or is out of bounds."""

    @abc.abstractmethod
    def unknown_cursor(self, batch_id: str, cursor: str | None = None) -> Refusal:
        """The 400 for a cursor (by default the `after` one) naming no batch served."""

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
    def page(self, page: Page) -> bytes:
        """A list answer: the page's batches in this API's envelope."""

    @abc.abstractmethod
    def claiming_more(self) -> bytes:
        """A list answer with no batches that still claims more (a broken server's)."""

    @abc.abstractmethod
    def error_body(self, refusal: Refusal, request_id: str | None = None) -> bytes:
        """An error answer's body, in this API's shape (with its request id, if it says it)."""


@frozen
class Dialects:
    """The dialects one server speaks below one base URL, each at its own path, and those
    it speaks `beside` them, below the same host and port, each with its own base URL.

    The first one answers the paths that none of them serves, unless the path lies below
    another's list path.
    """

    each: tuple[Dialect, ...] = field()
    beside: tuple[Dialect, ...] = field(default=(), kw_only=True)

    @classmethod
    def serving(cls, azure_api_version: str | None, beside: tuple[Dialect, ...] = ()) -> Dialects:
        """OpenAI's dialect; or, given the version its `/openai/batches` takes, Azure's two;
        and the dialects `beside` them."""
        if azure_api_version is None:
            return cls((OpenAIDialect(),), beside=beside)
        return cls((AzureVersionedDialect(azure_api_version), AzureV1Dialect()), beside=beside)

    @each.validator
    def _one_base_url(self, _: object, each: tuple[Dialect, ...]) -> None:
        if not each:
            raise ValueError("a server speaks at least one dialect")
        if len({dialect.url_suffix for dialect in each}) != 1:
            raise ValueError("the dialects of one server share its base URL")

    @beside.validator
    def _own_paths(self, _: object, beside: tuple[Dialect, ...]) -> None:
        every = self.each + beside
        if len({dialect.list_path for dialect in every}) != len(every):
            raise ValueError("each dialect of one server has a path of its own")

    @property
    def every(self) -> tuple[Dialect, ...]:
        """All the dialects served: those below the base URL, then those beside."""
        return self.each + self.beside

    @property
    def url_suffix(self) -> str:
        """What the base URL handed to a client ends in, after the host and port."""
        return self.each[0].url_suffix

    @property
    def fallback(self) -> Dialect:
        """The dialect that answers a path none of them serves."""
        return self.each[0]

    def owner(self, path: str) -> Dialect:
        """The dialect that answers a path none of them serves: the one below whose list
        path it lies, else the fallback."""
        for dialect in self.every:
            if dialect.lists(path) or dialect.retrieves(path):
                return dialect
        return self.fallback

    def lists(self, path: str) -> bool:
        """Whether a request to `path` is a list request of any of them."""
        return any(dialect.lists(path) for dialect in self.every)

    def retrieves(self, path: str) -> bool:
        """Whether a request to `path` is a retrieval of any of them."""
        return any(dialect.retrieves(path) for dialect in self.every)


class OpenAIDialect(Dialect):
    """OpenAI's `/v1/batches`: a Bearer key, `after` and `limit` 1..100, OpenAI's envelope
    and errors."""

    url_suffix = "/v1"
    list_path = "/v1/batches"
    request_id_header = "x-request-id"
    poll_after_header = "openai-poll-after-ms"
    request_error: ClassVar[str] = "invalid_request_error"
    """The `type` of an error the request made: its key, its query or its path."""
    server_error: ClassVar[str] = "server_error"
    """The `type` and `code` of an error the server made: an injected fault."""

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

    def unknown_cursor(self, batch_id: str, cursor: str | None = None) -> Refusal:
        name = cursor or self.cursor
        return Refusal(400, f"Invalid '{name}': no batch with id '{batch_id}' was found.", name)

    def no_batch(self, batch_id: str) -> Refusal:
        return Refusal(404, f"No batch found with id '{batch_id}'.")

    def not_found(self, method: str, path: str) -> Refusal:
        return Refusal(404, f"Invalid URL ({method} {path})")

    def injected(self, status: int) -> Refusal:
        kind = self.server_error
        return Refusal(status, f"Injected fault: {status}.", code=kind, kind=kind)

    def page(self, page: Page) -> bytes:
        envelope = {
            "object": "list",
            "first_id": page.ids[0] if page.ids else None,
            "last_id": page.ids[-1] if page.ids else None,
            "has_more": page.has_more,
        }
        return b'{"data":[' + b",".join(page.bodies) + b"]," + dumps(envelope)[1:]

    def claiming_more(self) -> bytes:
        return b'{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":true}'

    def error_body(self, refusal: Refusal, request_id: str | None = None) -> bytes:
        error = {
            "message": refusal.message,
            "type": refusal.kind or self.request_error,
            "param": refusal.param,
            "code": refusal.code,
        }
        return orjson.dumps({"error": error})


class AzureDialect(OpenAIDialect):
    """What Azure OpenAI's two API styles share below the bare endpoint: the key as
    `api-key` or Bearer, and errors as `{"error": {"code", "message"}}` with Azure's codes.

    Each style says which `api-version` it takes; pages, batches, limits and cursors are
    OpenAI's unless the style says otherwise.
    """

    url_suffix = ""
    codes: ClassVar[Mapping[int, str]] = {400: "BadRequest", 401: "401", 404: "NotFound"}
    """The `code` of an error by its status; any other status sends the status itself."""
    denied: ClassVar[str] = (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource."
    )
    """The message of a refused key."""

    @abc.abstractmethod
    def check_query(self, query: Mapping[str, str]) -> Refusal | None:
        """The 400 for an `api-version` this style does not take."""

    def check_auth(self, headers: Mapping[str, str], key: str) -> Refusal | None:
        if headers.get("api-key") == key or headers.get("Authorization") == f"Bearer {key}":
            return None
        return Refusal(401, self.denied)

    def not_found(self, method: str, path: str) -> Refusal:
        return Refusal(404, "Resource not found")

    def error_body(self, refusal: Refusal, request_id: str | None = None) -> bytes:
        code = self.codes.get(refusal.status, str(refusal.status))
        return orjson.dumps({"error": {"code": code, "message": refusal.message}})


class AzureVersionedDialect(AzureDialect):
    """Azure OpenAI's `/openai/batches`, which requires `api-version` to be `api_version`,
    and answers in the shapes of Azure's published REST spec: a list of only `object` and
    `data`, and a failed batch's `errors.data` as its first error alone, whose `line` is a
    string."""

    list_path = "/openai/batches"

    def __init__(self, api_version: str = AZURE_API_VERSION) -> None:
        self.api_version = api_version
        """The `api-version` it takes."""

    def check_query(self, query: Mapping[str, str]) -> Refusal | None:
        if query.get("api-version") == self.api_version:
            return None
        return Refusal(400, "API version not supported")

    def batch(self, body: bytes, rank: int = 0) -> bytes:
        return dumps(_as_published(body))

    def page(self, page: Page) -> bytes:
        return dumps({"object": "list", "data": [_as_published(body) for body in page.bodies]})


class AzureV1Dialect(AzureDialect):
    """Azure OpenAI's v1 API, `/openai/v1/batches`, which refuses any `api-version` and
    answers in OpenAI's shapes."""

    list_path = "/openai/v1/batches"

    def check_query(self, query: Mapping[str, str]) -> Refusal | None:
        if "api-version" not in query:
            return None
        return Refusal(400, "api-version query parameter is not allowed when using /v1 path")


def _as_published(body: bytes) -> dict[str, Any]:
    """A batch as Azure's published spec shapes it, its integers kept exact."""
    batch: dict[str, Any] = json.loads(body)
    return _synthetic.as_azure_publishes(batch)


def _mask(key: str) -> str:
    """Show a wrong key the way OpenAI does: a few characters at each end."""
    return f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
