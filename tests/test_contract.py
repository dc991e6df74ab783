"""Every page the fake server produces conforms to the official ListBatchesResponse schema.

The one documented relaxation: the real API sends `null` for optional
properties, which the schema does not say, so optional properties may be null.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml
from _helpers import MakeServer

from aiobatches.testing import FakeBatchesServer

DOCUMENT = yaml.safe_load(
    (Path(__file__).parent / "schema" / "openai-batches.schema.yaml").read_text()
)


def _nullable_optionals(schema: Any) -> Any:
    """A copy of `schema` in which every property not listed as required may also be null."""
    if isinstance(schema, list):
        return [_nullable_optionals(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    relaxed = {key: _nullable_optionals(value) for key, value in schema.items()}
    required = set(schema.get("required", ()))
    for name, prop in relaxed.get("properties", {}).items():
        if name not in required:
            relaxed["properties"][name] = {"anyOf": [prop, {"type": "null"}]}
    return relaxed


RELAXED = {
    "$ref": "#/components/schemas/ListBatchesResponse",
    "components": _nullable_optionals(copy.deepcopy(DOCUMENT["components"])),
}
VALIDATOR = jsonschema.Draft202012Validator(RELAXED)


def test_the_relaxation_is_only_about_null() -> None:
    """The relaxed schema still rejects a wrong type, an unknown status, and a missing field."""
    good = {"object": "list", "data": [], "has_more": False, "first_id": None, "last_id": None}
    assert VALIDATOR.is_valid(good)
    assert not VALIDATOR.is_valid({**good, "has_more": None})
    assert not VALIDATOR.is_valid({**good, "data": [{"id": "b", "object": "batch"}]})
    batch = {
        "id": "b", "object": "batch", "endpoint": "/v1/responses", "input_file_id": "f",
        "completion_window": "24h", "status": "completed", "created_at": 1, "model": None,
    }  # fmt: skip
    assert VALIDATOR.is_valid({**good, "data": [batch]})
    assert not VALIDATOR.is_valid({**good, "data": [{**batch, "status": "paused"}]})
    assert not VALIDATOR.is_valid({**good, "data": [{**batch, "created_at": "1"}]})
    assert not VALIDATOR.is_valid({**good, "data": [{**batch, "created_at": None}]})


@pytest.mark.parametrize(
    ("seed", "count"), [(0, 250), (1, 400), (7, 3)], ids=["seed0", "seed1", "seed7-small"]
)
@pytest.mark.parametrize("limit", [1, 7, 20, 100])
async def test_every_page_matches_list_batches_response(
    make_server: MakeServer, seed: int, count: int, limit: int
) -> None:
    """Walking the whole list at each page size, every raw page body is schema-valid."""
    server = await make_server(count=count, seed=seed)
    pages = 0
    after: str | None = None
    async with aiohttp.ClientSession() as session:
        while True:
            params = {"limit": str(limit), **({"after": after} if after else {})}
            async with session.get(f"{server.url}/batches", params=params) as response:
                assert response.status == 200
                page = await response.json()
            errors = sorted(VALIDATOR.iter_errors(page), key=lambda error: list(error.path))
            assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
            pages += 1
            if not page["has_more"]:
                break
            after = page["data"][-1]["id"]
    assert pages == -(-len(server.batches) // limit)


async def test_pages_leave_out_keys_as_real_servers_do() -> None:
    """The fake leaves keys out as real servers do, and its pages stay schema-valid."""
    async with (
        FakeBatchesServer(count=100, seed=0) as server,
        aiohttp.ClientSession() as session,
        session.get(f"{server.url}/batches", params={"limit": "100"}) as response,
    ):
        page = await response.json()
    items = page["data"]
    assert any("model" not in item and "usage" not in item for item in items)
    assert any("model" in item and "usage" not in item for item in items)
    assert any("usage" in item for item in items)
    assert any(item["errors"] and item["errors"]["object"] is None for item in items)
    assert VALIDATOR.is_valid(page)
