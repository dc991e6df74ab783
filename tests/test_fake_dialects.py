"""The fake server's dialects: each API's paths, credentials, page bounds and shapes."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from aiobatches._fake.dialects import (
    AzureDialect,
    AzureV1Dialect,
    AzureVersionedDialect,
    Dialect,
    Dialects,
    OpenAIDialect,
    PageQuery,
    Refusal,
)
from aiobatches._fake.living import Page

KEY = "sk-test-0123456789abcdef"
VERSIONED = "/openai/batches"
AZURE_V1 = "/openai/v1/batches"
PAGE = Page(
    ids=["batch_b", "batch_a"], bodies=[b'{"id":"batch_b"}', b'{"id":"batch_a"}'], has_more=True
)
FAILED = {
    "id": "batch_f",
    "status": "failed",
    "errors": {"object": "list", "data": [{"code": "c", "line": 7, "message": "m", "param": None}]},
}


def every_dialect() -> list[Dialect]:
    """One of each dialect the server has, found by walking the subclasses of `Dialect`."""
    found: list[Dialect] = []
    todo = Dialect.__subclasses__()
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__ == Dialect.__module__ and not inspect.isabstract(cls):
            found.append(cls())
    return found


def taken(dialect: Dialect) -> dict[str, str]:
    """The query every request to `dialect` carries besides its page: the `api-version`
    it requires, if it requires one."""
    version = getattr(dialect, "api_version", None)
    return {} if version is None else {"api-version": version}


class Paged(OpenAIDialect):
    """A dialect that names its cursor and bounds otherwise, as Anthropic's does."""

    cursor = "after_id"
    min_limit = 1
    max_limit = 1000


def error_of(dialect: Dialect, refusal: Refusal) -> Any:
    """The error body a dialect writes for `refusal`, decoded."""
    return json.loads(dialect.error_body(refusal))


def test_every_dialect_is_found() -> None:
    """The shared checks below run on OpenAI's dialect and each of Azure's two styles."""
    assert {type(dialect) for dialect in every_dialect()} == {
        OpenAIDialect,
        AzureVersionedDialect,
        AzureV1Dialect,
    }


@pytest.mark.parametrize("dialect", every_dialect(), ids=lambda dialect: type(dialect).__name__)
def test_a_dialect_takes_the_limits_it_names_and_refuses_the_rest(dialect: Dialect) -> None:
    """Its own cursor and bounds decide a page: default, both ends in, one past each end out."""
    base = taken(dialect)
    assert dialect.page_query(base) == PageQuery(None, dialect.default_limit)
    assert dialect.min_limit <= dialect.default_limit <= dialect.max_limit
    for limit in (dialect.min_limit, dialect.max_limit):
        query = {**base, "limit": str(limit), dialect.cursor: "batch_x"}
        assert dialect.page_query(query) == PageQuery("batch_x", limit)
    for raw in (str(dialect.min_limit - 1), str(dialect.max_limit + 1), "many"):
        refusal = dialect.page_query({**base, "limit": raw})
        assert isinstance(refusal, Refusal)
        assert refusal.status == 400


@pytest.mark.parametrize("dialect", every_dialect(), ids=lambda dialect: type(dialect).__name__)
def test_a_dialects_refusals_have_their_statuses_and_say_why(dialect: Dialect) -> None:
    """Unknown cursor 400, unknown batch and path 404, an injected status its own, each
    written as JSON that carries the message."""
    refusals = [
        (400, dialect.unknown_cursor("batch_gone")),
        (404, dialect.no_batch("batch_gone")),
        (404, dialect.not_found("POST", "/nowhere")),
        (503, dialect.injected(503)),
    ]
    for status, refusal in refusals:
        assert refusal.status == status
        assert json.dumps(refusal.message)[1:-1] in dialect.error_body(refusal).decode()


@pytest.mark.parametrize("dialect", every_dialect(), ids=lambda dialect: type(dialect).__name__)
def test_a_dialect_refuses_a_missing_or_wrong_key(dialect: Dialect) -> None:
    """No credential and a wrong one are 401s, whatever headers the API takes."""
    missing = dialect.check_auth({}, KEY)
    wrong = dialect.check_auth({"Authorization": "Bearer sk-wrong-key", "api-key": "x"}, KEY)
    assert missing is not None
    assert missing.status == 401
    assert wrong is not None
    assert wrong.status == 401


def test_the_cursor_and_bounds_are_read_from_the_dialect() -> None:
    """A dialect naming `after_id` and 1..1000 pages by those, not by OpenAI's."""
    paged = Paged()
    query = {"after_id": "batch_x", "after": "batch_y", "limit": "1000"}
    assert paged.page_query(query) == PageQuery("batch_x", 1000)
    refusal = paged.page_query({"limit": "1001"})
    assert isinstance(refusal, Refusal)
    assert "Expected a value <= 1000, but got 1001" in refusal.message
    assert paged.unknown_cursor("batch_gone").param == "after_id"


def test_openai_serves_v1_batches_with_a_bearer_key_only() -> None:
    """OpenAI lists at /v1/batches below a base URL ending in /v1, and takes only Bearer."""
    openai = OpenAIDialect()
    assert openai.list_path == "/v1/batches"
    assert openai.url_suffix == "/v1"
    assert (openai.cursor, openai.min_limit, openai.max_limit) == ("after", 1, 100)
    assert openai.request_id_header == "x-request-id"
    assert openai.poll_after_header == "openai-poll-after-ms"
    assert openai.check_auth({"Authorization": f"Bearer {KEY}"}, KEY) is None
    assert openai.check_auth({"api-key": KEY}, KEY) == Refusal(
        401,
        "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    )


def test_openai_masks_a_wrong_key_in_its_401() -> None:
    """A wrong key is named by its first three and last four characters only."""
    refusal = OpenAIDialect().check_auth({"Authorization": "Bearer sk-wrong-0123456789"}, KEY)
    assert refusal is not None
    assert refusal.code == "invalid_api_key"
    assert "sk-***6789" in refusal.message
    assert "wrong" not in refusal.message


def test_openai_pages_carry_the_cursor_envelope() -> None:
    """A page has `data` then `object`, `first_id`, `last_id` and `has_more`; an empty one nulls."""
    openai = OpenAIDialect()
    assert json.loads(openai.page(PAGE)) == {
        "data": [{"id": "batch_b"}, {"id": "batch_a"}],
        "object": "list",
        "first_id": "batch_b",
        "last_id": "batch_a",
        "has_more": True,
    }
    empty = json.loads(openai.page(Page(ids=[], bodies=[], has_more=False)))
    assert (empty["data"], empty["first_id"], empty["last_id"]) == ([], None, None)
    assert json.loads(openai.claiming_more())["has_more"] is True


def test_openai_errors_have_a_type_param_and_code() -> None:
    """An error is `{"error": {message, type, param, code}}`; an injected one a server error."""
    openai = OpenAIDialect()
    bad = openai.page_query({"limit": "0"})
    assert isinstance(bad, Refusal)
    assert error_of(openai, bad)["error"] == {
        "message": "Invalid 'limit': integer below minimum value. "
        "Expected a value >= 1, but got 0 instead.",
        "type": "invalid_request_error",
        "param": "limit",
        "code": "integer_below_min_value",
    }
    assert error_of(openai, openai.injected(500))["error"]["type"] == "server_error"
    assert openai.unknown_cursor("batch_gone").param == "after"


AZURE_STYLES = [AzureVersionedDialect(), AzureV1Dialect()]
"""Azure OpenAI's two API styles, as an Azure-mode server speaks them."""


def test_azure_serves_both_styles_at_the_endpoint_with_either_key() -> None:
    """Azure lists at both paths below the bare endpoint, and takes `api-key` or Bearer."""
    assert [azure.list_path for azure in AZURE_STYLES] == [VERSIONED, AZURE_V1]
    assert AzureVersionedDialect().api_version == "2024-10-21"
    for azure in AZURE_STYLES:
        assert azure.url_suffix == ""
        assert azure.check_auth({"api-key": KEY}, KEY) is None
        assert azure.check_auth({"Authorization": f"Bearer {KEY}"}, KEY) is None
        assert azure.check_auth({"Authorization": KEY}, KEY) is not None


def test_one_server_routes_each_path_to_its_dialect() -> None:
    """Azure's two styles share the endpoint: each path is listed or retrieved by its own."""
    both = Dialects(tuple(AZURE_STYLES))
    assert both.url_suffix == ""
    assert both.fallback is AZURE_STYLES[0]
    for path in (VERSIONED, AZURE_V1):
        assert both.lists(path)
        assert not both.retrieves(path)
        assert both.retrieves(f"{path}/batch_x")
        assert not both.lists(f"{path}/batch_x")
    assert not both.lists("/v1/batches")
    assert not both.retrieves("/openai/files/file_x")


def test_one_server_refuses_dialects_that_cannot_share_it() -> None:
    """No dialect, two base URLs, or two dialects at one path cannot make one server."""
    for each in (
        (),
        (OpenAIDialect(), AzureV1Dialect()),
        (AzureV1Dialect(), AzureV1Dialect()),
    ):
        with pytest.raises(ValueError, match="dialect"):
            Dialects(each)


def test_azure_versioned_takes_only_its_own_version() -> None:
    """The versioned path needs its own `api-version`, whatever else the query holds."""
    versioned = AzureVersionedDialect("2025-01-01")
    assert versioned.check_query({"api-version": "2025-01-01"}) is None
    for query in ({}, {"api-version": "2024-10-21"}):
        assert versioned.check_query(query) == Refusal(400, "API version not supported")
    refused = versioned.page_query({"limit": "5"})
    assert refused == Refusal(400, "API version not supported")


def test_azure_v1_refuses_any_version() -> None:
    """The v1 path takes no `api-version` at all."""
    v1 = AzureV1Dialect()
    assert v1.check_query({}) is None
    assert v1.page_query({"limit": "5"}) == PageQuery(None, 5)
    refused = v1.page_query({"api-version": "2025-01-01", "limit": "5"})
    assert isinstance(refused, Refusal)
    assert refused.status == 400
    assert "not allowed when using /v1 path" in refused.message


@pytest.mark.parametrize("azure", AZURE_STYLES, ids=lambda dialect: type(dialect).__name__)
def test_azure_errors_carry_only_its_code_and_message(azure: AzureDialect) -> None:
    """An error is `{"error": {code, message}}`, the code Azure's for the status."""
    assert error_of(azure, azure.no_batch("batch_gone")) == {
        "error": {"code": "NotFound", "message": "No batch found with id 'batch_gone'."}
    }
    assert error_of(azure, azure.unknown_cursor("batch_gone"))["error"]["code"] == "BadRequest"
    assert error_of(azure, azure.check_auth({}, KEY) or Refusal(0, ""))["error"]["code"] == "401"
    assert error_of(azure, azure.injected(503))["error"] == {
        "code": "503",
        "message": "Injected fault: 503.",
    }
    assert azure.not_found("GET", "/nowhere").message == "Resource not found"


def test_azure_versioned_path_writes_the_published_shapes() -> None:
    """The versioned path lists only `object` and `data`, a failed batch's first error alone
    with its line as a string."""
    versioned = AzureVersionedDialect()
    assert json.loads(versioned.page(PAGE)) == {
        "object": "list",
        "data": [{"id": "batch_b"}, {"id": "batch_a"}],
    }
    published = json.loads(versioned.batch(json.dumps(FAILED).encode()))
    assert published["errors"]["data"] == {"code": "c", "line": "7", "message": "m", "param": None}


def test_azure_v1_path_writes_openais_shapes() -> None:
    """The v1 path writes OpenAI's pages and batches untouched."""
    v1 = AzureV1Dialect()
    assert v1.page(PAGE) == OpenAIDialect().page(PAGE)
    assert v1.claiming_more() == OpenAIDialect().claiming_more()
    body = json.dumps(FAILED).encode()
    assert v1.batch(body) == body
