"""The fake server's dialects: each API's paths, credentials, page bounds and shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aiobatches._fake.dialects import (
    AzureDialect,
    Dialect,
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
        if cls.__module__ == Dialect.__module__:
            found.append(cls())
    return found


class Paged(OpenAIDialect):
    """A dialect that names its cursor and bounds otherwise, as Anthropic's does."""

    cursor = "after_id"
    min_limit = 1
    max_limit = 1000


def error_of(dialect: Dialect, refusal: Refusal) -> Any:
    """The error body a dialect writes for `refusal`, decoded."""
    return json.loads(dialect.error_body(refusal))


def test_every_dialect_is_found() -> None:
    """The shared checks below run on OpenAI's dialect and Azure's."""
    assert {type(dialect) for dialect in every_dialect()} == {OpenAIDialect, AzureDialect}


@pytest.mark.parametrize("dialect", every_dialect(), ids=lambda dialect: type(dialect).__name__)
def test_a_dialect_takes_the_limits_it_names_and_refuses_the_rest(dialect: Dialect) -> None:
    """Its own cursor and bounds decide a page: default, both ends in, one past each end out."""
    path = dialect.list_paths[-1]
    assert dialect.page_query(path, {}) == PageQuery(None, dialect.default_limit)
    assert dialect.min_limit <= dialect.default_limit <= dialect.max_limit
    for limit in (dialect.min_limit, dialect.max_limit):
        query = {"limit": str(limit), dialect.cursor: "batch_x"}
        assert dialect.page_query(path, query) == PageQuery("batch_x", limit)
    for raw in (str(dialect.min_limit - 1), str(dialect.max_limit + 1), "many"):
        refusal = dialect.page_query(path, {"limit": raw})
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
    assert paged.page_query("/v1/batches", query) == PageQuery("batch_x", 1000)
    refusal = paged.page_query("/v1/batches", {"limit": "1001"})
    assert isinstance(refusal, Refusal)
    assert "Expected a value <= 1000, but got 1001" in refusal.message
    assert paged.unknown_cursor("batch_gone").param == "after_id"


def test_openai_serves_v1_batches_with_a_bearer_key_only() -> None:
    """OpenAI lists at /v1/batches below a base URL ending in /v1, and takes only Bearer."""
    openai = OpenAIDialect()
    assert openai.list_paths == ("/v1/batches",)
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
    assert json.loads(openai.page("/v1/batches", PAGE)) == {
        "data": [{"id": "batch_b"}, {"id": "batch_a"}],
        "object": "list",
        "first_id": "batch_b",
        "last_id": "batch_a",
        "has_more": True,
    }
    empty = json.loads(openai.page("/v1/batches", Page(ids=[], bodies=[], has_more=False)))
    assert (empty["data"], empty["first_id"], empty["last_id"]) == ([], None, None)
    assert json.loads(openai.claiming_more("/v1/batches"))["has_more"] is True


def test_openai_errors_have_a_type_param_and_code() -> None:
    """An error is `{"error": {message, type, param, code}}`; an injected one a server error."""
    openai = OpenAIDialect()
    bad = openai.page_query("/v1/batches", {"limit": "0"})
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


def test_azure_serves_both_styles_at_the_endpoint_with_either_key() -> None:
    """Azure lists at both paths below the bare endpoint, and takes `api-key` or Bearer."""
    azure = AzureDialect()
    assert azure.list_paths == (VERSIONED, AZURE_V1)
    assert azure.url_suffix == ""
    assert azure.api_version == "2024-10-21"
    assert azure.check_auth({"api-key": KEY}, KEY) is None
    assert azure.check_auth({"Authorization": f"Bearer {KEY}"}, KEY) is None
    assert azure.check_auth({"Authorization": KEY}, KEY) is not None


def test_azure_versions_only_its_versioned_path() -> None:
    """The versioned path needs its own `api-version`; the v1 path refuses any."""
    azure = AzureDialect("2025-01-01")
    assert azure.check_query(VERSIONED, {"api-version": "2025-01-01"}) is None
    assert azure.check_query(AZURE_V1, {}) is None
    for path, query in ((VERSIONED, {}), (VERSIONED, {"api-version": "2024-10-21"})):
        assert azure.check_query(path, query) == Refusal(400, "API version not supported")
    refused = azure.page_query(AZURE_V1, {"api-version": "2025-01-01", "limit": "5"})
    assert isinstance(refused, Refusal)
    assert "not allowed when using /v1 path" in refused.message


def test_azure_errors_carry_only_its_code_and_message() -> None:
    """An error is `{"error": {code, message}}`, the code Azure's for the status."""
    azure = AzureDialect()
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
    with its line as a string; the v1 path writes OpenAI's shapes untouched."""
    azure = AzureDialect()
    assert json.loads(azure.page(VERSIONED, PAGE)) == {
        "object": "list",
        "data": [{"id": "batch_b"}, {"id": "batch_a"}],
    }
    assert azure.page(AZURE_V1, PAGE) == OpenAIDialect().page("/v1/batches", PAGE)
    body = json.dumps(FAILED).encode()
    published = json.loads(azure.batch(VERSIONED, body))
    assert published["errors"]["data"] == {"code": "c", "line": "7", "message": "m", "param": None}
    assert azure.batch(AZURE_V1, body) == body
