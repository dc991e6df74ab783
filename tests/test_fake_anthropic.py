"""The fake server speaks Anthropic's Message Batches beside OpenAI's batches, from the same
batches: shapes, paging both ways, auth, the version header, errors, faults, and living."""

from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
import pytest
from _helpers import API_KEY, AZURE_VERSION, MakeServer

from aiobatches._fake.anthropic import AnthropicDialect, kind_of, message_batch, within_second
from aiobatches._synthetic import EPOCH, synthetic_batches
from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan, ManualClock

LIST: Final = "/v1/messages/batches"
HEADERS: Final = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
RFC3339: Final = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
KEYS: Final = {
    "id", "type", "processing_status", "request_counts", "ended_at", "created_at",
    "expires_at", "archived_at", "cancel_initiated_at", "results_url",
}  # fmt: skip
COUNTS: Final = ("processing", "succeeded", "errored", "canceled", "expired")
Answer = tuple[int, Mapping[str, str], Any]


async def get(
    server: FakeBatchesServer,
    path: str = LIST,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] = HEADERS,
) -> Answer:
    """GET `path` below the server's Anthropic base URL: status, headers and decoded body."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.anthropic_url + path, params=params, headers=headers) as response,
    ):
        return response.status, response.headers, await response.json()


async def walk(server: FakeBatchesServer, limit: int) -> list[dict[str, Any]]:
    """Every batch, following `last_id` as `after_id` until `has_more` is false."""
    seen: list[dict[str, Any]] = []
    params = {"limit": str(limit)}
    while True:
        status, _, page = await get(server, params=params)
        assert status == 200
        assert len(page["data"]) <= limit
        seen.extend(page["data"])
        if not page["has_more"]:
            return seen
        params = {"limit": str(limit), "after_id": page["last_id"]}


def moment(stamp: str) -> datetime.datetime:
    """An RFC 3339 stamp as Anthropic writes it, as an aware datetime."""
    assert RFC3339.match(stamp), stamp
    return datetime.datetime.fromisoformat(stamp)


def check_shape(item: Mapping[str, Any]) -> None:
    """A message batch has exactly Anthropic's keys, its nulls where the real API sends them,
    and counts that sum to a constant total."""
    assert set(item) == KEYS
    assert item["type"] == "message_batch"
    assert item["id"].startswith("msgbatch_")
    assert item["archived_at"] is None
    created = moment(item["created_at"])
    assert moment(item["expires_at"]) - created == datetime.timedelta(days=1)
    counts = item["request_counts"]
    assert set(counts) == set(COUNTS)
    assert all(isinstance(counts[name], int) and counts[name] >= 0 for name in COUNTS)
    assert sum(counts.values()) > 0
    ended = item["processing_status"] == "ended"
    assert item["processing_status"] in {"in_progress", "canceling", "ended"}
    assert (item["ended_at"] is not None) == ended
    assert (item["results_url"] is not None) == ended
    if ended:
        assert counts["processing"] == 0
        assert moment(item["ended_at"]) >= created
        assert item["results_url"] == (
            f"https://api.anthropic.com/v1/messages/batches/{item['id']}/results"
        )
    else:
        assert counts["processing"] == sum(counts.values())
    if item["processing_status"] == "canceling":
        assert item["cancel_initiated_at"] is not None
    if item["cancel_initiated_at"] is not None:
        assert moment(item["cancel_initiated_at"]) >= created


def anthropic_id(openai_id: str) -> str:
    """The id the Anthropic paths serve an OpenAI-shaped batch by."""
    return "msgbatch_" + openai_id.removeprefix("batch_")


async def test_the_anthropic_base_url_has_no_v1(make_server: MakeServer) -> None:
    """`anthropic_url` is the bare host and port: a client appends `/v1/messages/batches`."""
    server = await make_server(count=3)
    assert server.url == server.anthropic_url + "/v1"
    status, _, page = await get(server)
    assert status == 200
    assert set(page) == {"data", "has_more", "first_id", "last_id"}


@pytest.mark.parametrize("limit", [1, 7, 20, 1000])
async def test_after_id_walks_the_same_batches_as_openai_newest_first(
    make_server: MakeServer, limit: int
) -> None:
    """Following `last_id` gives every batch once, in the OpenAI list's order, each well shaped."""
    server = await make_server(count=60, seed=5)
    items = await walk(server, limit)
    assert [item["id"] for item in items] == [anthropic_id(b["id"]) for b in server.batches]
    for item in items:
        check_shape(item)
    created = [moment(item["created_at"]) for item in items]
    assert created == sorted(created, reverse=True)


async def test_the_default_page_is_twenty_with_its_first_and_last_ids(
    make_server: MakeServer,
) -> None:
    """Without `limit` a page holds 20; `first_id` and `last_id` name its ends."""
    server = await make_server(count=45)
    _, _, page = await get(server)
    assert len(page["data"]) == 20
    assert page["has_more"] is True
    assert page["first_id"] == page["data"][0]["id"]
    assert page["last_id"] == page["data"][-1]["id"]


async def test_before_id_pages_back_up_to_the_newest(make_server: MakeServer) -> None:
    """From the oldest batch, `before_id=first_id` gives the next newer pages, newest first."""
    server = await make_server(count=23)
    expected = [anthropic_id(batch["id"]) for batch in server.batches]
    collected: list[str] = []
    params = {"limit": "5", "before_id": expected[-1]}
    while True:
        status, _, page = await get(server, params=params)
        assert status == 200
        ids = [item["id"] for item in page["data"]]
        collected[:0] = ids
        if not page["has_more"]:
            break
        params = {"limit": "5", "before_id": page["first_id"]}
    assert collected == expected[:-1]
    _, _, top = await get(server, params={"before_id": expected[0]})
    assert top == {"data": [], "has_more": False, "first_id": None, "last_id": None}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0", "limit: Input should be greater than or equal to 1"),
        ("1001", "limit: Input should be less than or equal to 1000"),
        ("many", "limit: Input should be a valid integer, unable to parse string as an integer"),
    ],
)
async def test_a_limit_out_of_bounds_is_an_invalid_request(
    make_server: MakeServer, raw: str, message: str
) -> None:
    """`limit` must be a whole number in 1..1000: a 400 `invalid_request_error` otherwise."""
    server = await make_server(count=3)
    status, headers, body = await get(server, params={"limit": raw})
    assert status == 400
    assert body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
        "request_id": headers["request-id"],
    }


@pytest.mark.parametrize("cursor", ["after_id", "before_id"])
async def test_an_unknown_cursor_is_an_invalid_request(
    make_server: MakeServer, cursor: str
) -> None:
    """A cursor naming no message batch (or naming an OpenAI id) is a 400, as OpenAI's `after`."""
    server = await make_server(count=3)
    openai_id = server.batches[0]["id"]
    for unknown in ("msgbatch_gone", openai_id):
        status, _, body = await get(server, params={cursor: unknown})
        assert status == 400
        assert body["error"]["type"] == "invalid_request_error"
        assert cursor in body["error"]["message"]
        assert unknown in body["error"]["message"]


async def test_after_id_and_before_id_together_are_refused(make_server: MakeServer) -> None:
    """A page goes one way: both cursors at once are a 400."""
    server = await make_server(count=3)
    first = anthropic_id(server.batches[0]["id"])
    status, _, body = await get(server, params={"after_id": first, "before_id": first})
    assert status == 400
    assert body["error"]["message"] == "after_id and before_id cannot both be given"


async def test_the_key_is_taken_as_x_api_key_or_bearer(make_server: MakeServer) -> None:
    """Either header carries the key; none, or a wrong one, is a 401 `authentication_error`."""
    server = await make_server(count=3, api_key=API_KEY)
    version = {"anthropic-version": "2026-10-21"}
    for credential in ({"x-api-key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
        status, _, _ = await get(server, headers={**version, **credential})
        assert status == 200
    refused = [
        ({}, "x-api-key header is required"),
        ({"x-api-key": "sk-wrong"}, "invalid x-api-key"),
        ({"Authorization": "Bearer sk-wrong"}, "invalid bearer token"),
    ]
    for credential, message in refused:
        status, headers, body = await get(server, headers={**version, **credential})
        assert status == 401
        assert body["error"] == {"type": "authentication_error", "message": message}
        assert body["request_id"] == headers["request-id"]


async def test_a_missing_anthropic_version_is_a_400(make_server: MakeServer) -> None:
    """Any `anthropic-version` is taken; without one, list and retrieve are refused."""
    server = await make_server(count=3)
    batch_id = anthropic_id(server.batches[0]["id"])
    for path in (LIST, f"{LIST}/{batch_id}"):
        status, _, body = await get(server, path, headers={"x-api-key": API_KEY})
        assert status == 400
        assert body["error"] == {
            "type": "invalid_request_error",
            "message": "anthropic-version: header is required",
        }
        status, _, _ = await get(server, path, headers={"anthropic-version": "2099-01-01"})
        assert status == 200


async def test_retrieve_answers_the_listed_batch(make_server: MakeServer) -> None:
    """`GET /v1/messages/batches/{id}` is the batch as the list shows it, with a request id."""
    server = await make_server(count=12, seed=2)
    _, _, page = await get(server, params={"limit": "12"})
    for item in page["data"]:
        status, headers, body = await get(server, f"{LIST}/{item['id']}")
        assert status == 200
        assert body == item
        assert headers["request-id"].startswith("req_")


async def test_an_unknown_batch_is_a_not_found_error_naming_its_request(
    make_server: MakeServer,
) -> None:
    """An unknown id, an OpenAI id, and an unserved path below it are 404 `not_found_error`s."""
    server = await make_server(count=3)
    paths = [
        f"{LIST}/msgbatch_gone",
        f"{LIST}/{server.batches[0]['id']}",
        f"{LIST}/{anthropic_id(server.batches[0]['id'])}/results",
    ]
    request_ids = set()
    for path in paths:
        status, headers, body = await get(server, path)
        assert status == 404
        assert body["type"] == "error"
        assert body["error"]["type"] == "not_found_error"
        assert body["request_id"] == headers["request-id"]
        request_ids.add(body["request_id"])
    assert len(request_ids) == len(paths)


async def test_openai_paths_keep_their_own_shapes(make_server: MakeServer) -> None:
    """Serving Anthropic beside them leaves OpenAI's answers and errors as they were."""
    server = await make_server(count=3)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/batches", params={"limit": "0"}) as response:
            body = await response.json()
            assert response.status == 400
            assert body["error"]["code"] == "integer_below_min_value"
            assert "request-id" not in response.headers
        async with session.get(f"{server.url}/batches") as response:
            assert (await response.json())["object"] == "list"


async def test_an_azure_server_serves_anthropic_too(make_server: MakeServer) -> None:
    """Azure mode keeps its endpoint as `url`; the Anthropic paths are served beside it."""
    server = await make_server(count=4, azure=True, azure_api_version=AZURE_VERSION)
    assert server.url == server.anthropic_url
    assert len(await walk(server, 3)) == 4


async def test_injected_faults_are_anthropic_shaped(make_server: MakeServer) -> None:
    """A status fault, 529 included, answers Anthropic's error; an empty page claims more."""
    plan = FaultPlan(at={0: Fault.respond(529), 1: Fault.respond(500), 2: Fault.empty_has_more()})
    server = await make_server(count=3, faults=plan)
    status, headers, body = await get(server)
    assert status == 529
    assert body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": headers["request-id"],
    }
    status, _, body = await get(server)
    assert (status, body["error"]["type"]) == (500, "api_error")
    status, _, body = await get(server)
    assert (status, body) == (
        200,
        {"data": [], "has_more": True, "first_id": None, "last_id": None},
    )
    assert server.page_request_count == 3
    status, _, _ = await get(server)
    assert status == 200


async def test_a_living_server_moves_its_message_batches(make_server: MakeServer) -> None:
    """On a clock, in-progress batches end with their counts split, and new ones appear on top."""
    clock = ManualClock()
    server = await make_server(count=40, seed=3, clock=clock, arrival_every=600)
    before = {item["id"]: item for item in await walk(server, 100)}
    assert any(item["processing_status"] != "ended" for item in before.values())
    clock.advance(2 * 86_400)
    after = {item["id"]: item for item in await walk(server, 100)}
    assert len(set(after) - set(before)) > 100
    ended = 0
    for batch_id, was in before.items():
        if batch_id not in after or was["processing_status"] == "ended":
            continue
        now = after[batch_id]
        check_shape(now)
        assert now["processing_status"] == "ended"
        assert now["created_at"] == was["created_at"]
        ended += 1
    assert ended > 0
    newest = next(iter(after.values()))
    assert moment(newest["created_at"]).timestamp() <= clock.now()


async def test_many_batches_of_one_second_list_in_their_exact_order(
    make_server: MakeServer,
) -> None:
    """Given batches sharing a second keep their order by the exact microsecond, newest first."""
    given = synthetic_batches(30, seed=4)
    for batch in given:
        batch["created_at"] = EPOCH
    server = await make_server(given)
    items = await walk(server, 7)
    assert [item["id"] for item in items] == [anthropic_id(b["id"]) for b in given]
    created = [moment(item["created_at"]) for item in items]
    assert all(newer > older for newer, older in itertools.pairwise(created))
    assert len({stamp.microsecond for stamp in created}) == len(created)


async def test_dense_arrivals_keep_their_exact_order(make_server: MakeServer) -> None:
    """Arrivals many to a second (and the microseconds of a batch) never change order or value."""
    clock = ManualClock()
    server = await make_server(count=0, clock=clock, arrival_every=0.05)
    clock.advance(5)
    first = await walk(server, 1000)
    clock.advance(5)
    second = await walk(server, 1000)
    assert len(first) > 50
    seconds = [moment(item["created_at"]).replace(microsecond=0) for item in first]
    assert len(set(seconds)) < len(seconds)  # several arrivals share a second
    for items in (first, second):
        created = [moment(item["created_at"]) for item in items]
        assert all(newer > older for newer, older in itertools.pairwise(created))
    still = {item["id"]: item["created_at"] for item in second}
    assert all(still[item["id"]] == item["created_at"] for item in first)


def test_statuses_fold_into_anthropics_three_and_split_the_counts() -> None:
    """OpenAI's seven statuses map to three; the counts stay `processing` until the end."""
    counts = {"total": 10, "completed": 6, "failed": 1}
    cases = {
        "validating": ("in_progress", {"processing": 10}),
        "in_progress": ("in_progress", {"processing": 10}),
        "finalizing": ("in_progress", {"processing": 10}),
        "cancelling": ("canceling", {"processing": 10}),
        "completed": ("ended", {"succeeded": 6, "errored": 4}),
        "failed": ("ended", {"errored": 10}),
        "expired": ("ended", {"succeeded": 6, "errored": 1, "expired": 3}),
        "cancelled": ("ended", {"succeeded": 6, "errored": 1, "canceled": 3}),
    }
    for status, (folded, split) in cases.items():
        batch = {
            "id": "batch_abc", "status": status, "created_at": EPOCH, "request_counts": counts,
            "cancelling_at": EPOCH + 5 if status.startswith("cancel") else None,
            "completed_at": EPOCH + 9 if status == "completed" else None,
        }  # fmt: skip
        item = message_batch(batch)
        assert item["processing_status"] == folded, status
        assert item["request_counts"] == {**dict.fromkeys(COUNTS, 0), **split}, status
        check_shape(item)


def test_a_batch_that_never_started_still_counts_its_requests() -> None:
    """A batch failed in validation (OpenAI counts none) has all of some requests errored."""
    item = message_batch({"id": "batch_f", "status": "failed", "created_at": EPOCH})
    assert item["request_counts"]["errored"] > 0
    assert item["request_counts"]["errored"] == sum(item["request_counts"].values())


def test_microseconds_grow_with_the_rank_within_a_second() -> None:
    """Whatever the ids, a later rank has a later microsecond, up to hundreds in a second."""
    micros = [within_second(rank, f"batch_{rank:x}") for rank in range(900)]
    assert micros == sorted(micros)
    assert len(set(micros)) == len(micros)
    assert micros[-1] < 1_000_000
    assert within_second(0, "batch_a") != within_second(0, "batch_b")


def test_the_dialect_names_anthropics_paths_and_cursors() -> None:
    """Its list path, request id header, cursors and bounds are Anthropic's."""
    dialect = AnthropicDialect()
    assert dialect.list_path == LIST
    assert (dialect.cursor, dialect.before_cursor) == ("after_id", "before_id")
    assert (dialect.min_limit, dialect.default_limit, dialect.max_limit) == (1, 20, 1000)
    assert dialect.request_id_header == "request-id"
    assert dialect.poll_after_header is None


async def test_before_id_climbs_from_given_batches_into_arrivals(make_server: MakeServer) -> None:
    """On a living server, pages above a given batch run through the given ones, then the drawn."""
    clock = ManualClock()
    given = synthetic_batches(4, seed=8, newest=EPOCH - 86_400)
    server = await make_server(given, clock=clock, arrival_every=600)
    clock.advance(3 * 3_600)
    expected = [anthropic_id(batch["id"]) for batch in server.batches]
    assert len(expected) > 10
    collected: list[str] = []
    params = {"limit": "3", "before_id": expected[-1]}
    while True:
        _, _, page = await get(server, params=params)
        collected[:0] = [item["id"] for item in page["data"]]
        if not page["has_more"]:
            break
        params = {"limit": "3", "before_id": page["first_id"]}
    assert collected == expected[:-1]


def test_each_status_has_anthropics_error_type() -> None:
    """The errors page's statuses have their own types; any other 4xx or 5xx the generic one."""
    assert [kind_of(status) for status in (400, 401, 403, 404, 413, 429, 500, 529)] == [
        "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
        "request_too_large", "rate_limit_error", "api_error", "overloaded_error",
    ]  # fmt: skip
    assert (kind_of(418), kind_of(503)) == ("invalid_request_error", "api_error")


async def test_a_given_id_that_is_not_openais_is_served_as_it_is(make_server: MakeServer) -> None:
    """A given batch whose id is not `batch_...` keeps its id: listed, paged by and retrieved."""
    given = synthetic_batches(3, seed=6)
    given[1]["id"] = "msgbatch_01GivenAsIs"
    server = await make_server(given)
    _, _, page = await get(server, params={"limit": "2"})
    assert page["last_id"] == "msgbatch_01GivenAsIs"
    _, _, rest = await get(server, params={"after_id": page["last_id"]})
    assert [item["id"] for item in rest["data"]] == [anthropic_id(given[2]["id"])]
    status, _, body = await get(server, f"{LIST}/msgbatch_01GivenAsIs")
    assert (status, body) == (200, page["data"][1])
