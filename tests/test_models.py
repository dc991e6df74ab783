"""The models cover the official schema, and the converter reads what the API sends."""

from __future__ import annotations

import json
import pickle
import re
import types
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

import aiobatches
from aiobatches import (
    Batch,
    BatchError,
    BatchErrors,
    BatchPage,
    BatchRequestCounts,
    BatchStatus,
    BatchUsage,
    InputTokensDetails,
    OutputTokensDetails,
)
from aiobatches._converter import (
    PayloadError,
    make_converter,
    parse_page,
    unstructure_batch,
)
from aiobatches._fast import structure_function
from aiobatches.testing import synthetic_batches

SCHEMA = yaml.safe_load(
    (Path(__file__).parent / "schema" / "openai-batches.schema.yaml").read_text()
)
COMPONENTS = SCHEMA["components"]["schemas"]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a `$ref` and unwrap a nullable `anyOf` to the object schema inside."""
    if "$ref" in schema:
        return _resolve(COMPONENTS[schema["$ref"].rsplit("/", 1)[-1]])
    for option in schema.get("anyOf", ()):
        if option.get("type") != "null":
            return _resolve(option)
    return schema


def _model_of(annotation: Any) -> Any:
    """The attrs class inside `X | None` or `list[X]`, else None."""
    if isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            if (found := _model_of(arg)) is not None:
                return found
    if typing.get_origin(annotation) is list:
        return _model_of(typing.get_args(annotation)[0])
    return annotation if attrs.has(annotation) else None


def _hints(cls: Any) -> dict[str, Any]:
    """The field types of `cls`, or of a generic model's alias with its parameters filled
    in (`BatchPage[Batch]`: `data` is a `list[Batch]`)."""
    origin = typing.get_origin(cls) or cls
    filled = dict(zip(getattr(origin, "__parameters__", ()), typing.get_args(cls), strict=False))
    hints = typing.get_type_hints(origin)
    for name, hint in hints.items():
        if typing.get_origin(hint) is list and (item := typing.get_args(hint)[0]) in filled:
            hints[name] = list.__class_getitem__(filled[item])
        elif hint in filled:
            hints[name] = filled[hint]
    return hints


def _missing_fields(cls: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Every schema property (recursively) with no field on the model that should hold it."""
    schema = _resolve(schema)
    if schema.get("type") == "array":
        schema = _resolve(schema["items"])
    fields = attrs.fields_dict(typing.get_origin(cls) or cls)
    hints = _hints(cls)
    missing = []
    for name, prop in schema.get("properties", {}).items():
        if name not in fields:
            missing.append(f"{path}.{name}")
            continue
        target = _resolve(prop)
        if target.get("type") == "array":
            target = _resolve(target["items"])
        if target.get("properties"):
            nested = _model_of(hints[name])
            if nested is None:
                missing.append(f"{path}.{name} (no model class)")
            else:
                missing.extend(_missing_fields(nested, prop, f"{path}.{name}"))
    return missing


def test_every_schema_property_has_a_model_field() -> None:
    """Walking the official schema finds a model field for every property, nested ones too."""
    assert _missing_fields(Batch, COMPONENTS["Batch"], "Batch") == []
    page = BatchPage[Batch]  # OpenAI's page holds its batches
    assert _missing_fields(page, COMPONENTS["ListBatchesResponse"], "BatchPage") == []


def test_schema_required_fields_are_the_only_ones_without_default() -> None:
    """A field the schema marks optional defaults to None; a required one must be given."""
    required = set(COMPONENTS["Batch"]["required"])
    for field in attrs.fields(Batch):
        assert (field.default is attrs.NOTHING) == (field.name in required), field.name
        if field.name not in required:
            assert field.default is None, field.name


def test_schema_walk_notices_a_missing_field() -> None:
    """The walk reports a property the model lacks (so the test above can fail)."""

    @attrs.frozen
    class Partial:
        input_tokens: int

    problems = _missing_fields(Partial, COMPONENTS["Batch"]["properties"]["usage"], "usage")
    assert "usage.total_tokens" in problems


def test_models_are_frozen_and_slotted() -> None:
    """Models cannot be changed after they are built and carry no instance dict."""
    batch = _structure(_item())
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        batch.status = "failed"  # type: ignore[misc]
    assert not hasattr(batch, "__dict__")


HASHED = synthetic_batches(200, seed=11)


def test_every_batch_hashes_by_its_id() -> None:
    """Batches from the converter hash whatever their data holds, so sets and dicts take them."""
    assert any(item["metadata"] for item in HASHED)
    assert any(item["errors"] and item["errors"]["data"] for item in HASHED)
    converter = make_converter()
    batches = [converter.structure(item, Batch) for item in HASHED]
    assert all(hash(batch) == hash(batch.id) for batch in batches)
    assert len(set(batches)) == len(batches)
    by_batch = {batch: batch.id for batch in batches}
    assert all(by_batch[batch] == batch.id for batch in batches)
    # Equal batches hash equally, however they were built.
    detailed = make_converter(detailed_validation=True)
    for batch, item in zip(batches, HASHED, strict=True):
        for twin in (
            detailed.structure(item, Batch),
            parse_page({"data": [item]}).batches[0],
            attrs.evolve(batch),
        ):
            assert twin == batch
            assert hash(twin) == hash(batch)
            assert twin in by_batch


def test_snapshots_of_one_batch_share_a_hash_but_not_equality() -> None:
    """A batch seen again with another status is another element of a set, found by its id."""
    batch = make_converter().structure(HASHED[0], Batch)
    later = attrs.evolve(batch, status="cancelling")
    assert later != batch
    assert hash(later) == hash(batch)
    assert len({batch, later}) == 2
    assert {item.id: item for item in (batch, later)} == {batch.id: later}


@pytest.mark.parametrize(
    "model",
    [
        BatchError(code="invalid_json_line", line=3),
        BatchRequestCounts(total=3, completed=2, failed=1),
        InputTokensDetails(cached_tokens=1),
        OutputTokensDetails(reasoning_tokens=2),
        BatchUsage(5, InputTokensDetails(1), 3, OutputTokensDetails(2), 8),
    ],
    ids=lambda model: type(model).__name__,
)
def test_models_of_scalars_hash_by_value(model: Any) -> None:
    """A model holding only scalars (or such models) hashes by its value."""
    assert hash(model) == hash(attrs.evolve(model))
    assert len({model, attrs.evolve(model)}) == 1


def test_models_holding_a_list_are_never_hashable() -> None:
    """BatchErrors and BatchPage refuse hash() whatever they hold, an empty list included."""
    errors = next(
        batch.errors for batch in parse_page({"data": list(HASHED)}).batches if batch.errors
    )
    page = page_of({"data": HASHED[:3], "has_more": False})
    for unhashable in (
        BatchErrors(),
        BatchErrors(data=[BatchError(code="x")]),
        errors,
        BatchPage([], None, None, has_more=False),
        page,
    ):
        assert type(unhashable).__hash__ is None
        with pytest.raises(TypeError, match="unhashable type"):
            hash(unhashable)


def test_models_are_named_by_their_public_path() -> None:
    """Models print and pickle as `aiobatches.<Name>`, as users import them."""
    models = [
        Batch,
        BatchError,
        BatchErrors,
        BatchPage,
        BatchRequestCounts,
        BatchStatus,
        BatchUsage,
        InputTokensDetails,
        OutputTokensDetails,
    ]
    for model in models:
        assert model.__module__ == "aiobatches"
        assert getattr(aiobatches, model.__name__) is model
    assert repr(Batch) == "<class 'aiobatches.Batch'>"
    page = page_of({"data": HASHED[:20], "has_more": True})
    assert pickle.loads(pickle.dumps(page)) == page  # noqa: S301 - our own bytes


def _item(**changes: Any) -> dict[str, Any]:
    item = dict(synthetic_batches(1, seed=3)[0])
    item.update(changes)
    return item


def page_of(payload: object) -> BatchPage[Batch]:
    """The page a list response holds, as a stream hands it out; its first malformed item
    raised as a PayloadError saying what is wrong."""
    parsed = parse_page(payload)
    if parsed.invalid:
        raise PayloadError(parsed.invalid[0].problem)
    return BatchPage(parsed.batches, parsed.first_id, parsed.last_id, bool(parsed.has_more))


def _structure(item: Any) -> Batch:
    return page_of({"object": "list", "data": [item], "has_more": False}).data[0]


def test_schema_example_structures() -> None:
    """The schema's own example batch (with its null fields) becomes a Batch."""
    example = {
        "id": "batch_abc123",
        "object": "batch",
        "endpoint": "/v1/completions",
        "model": "gpt-5-2025-08-07",
        "errors": None,
        "input_file_id": "file-abc123",
        "completion_window": "24h",
        "status": "completed",
        "output_file_id": "file-cvaTdG",
        "error_file_id": "file-HOWS94",
        "created_at": 1711471533,
        "in_progress_at": 1711471538,
        "expires_at": 1711557933,
        "finalizing_at": 1711493133,
        "completed_at": 1711493163,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 100, "completed": 95, "failed": 5},
        "usage": {
            "input_tokens": 1500,
            "input_tokens_details": {"cached_tokens": 1024},
            "output_tokens": 500,
            "output_tokens_details": {"reasoning_tokens": 300},
            "total_tokens": 2000,
        },
        "metadata": {"customer_id": "user_123456789", "batch_description": "Nightly eval job"},
    }
    batch = _structure(example)
    assert batch.status is BatchStatus.COMPLETED
    assert batch.request_counts is not None
    assert batch.request_counts.completed == 95
    assert isinstance(batch.usage, BatchUsage)
    assert batch.usage.input_tokens_details.cached_tokens == 1024
    assert batch.failed_at is None
    assert batch.completed_at == 1711493163
    assert unstructure_batch(batch) == example


def test_optional_fields_may_be_absent_or_null() -> None:
    """Only the seven required fields are needed; every other one may be missing or null."""
    required = {key: _item()[key] for key in COMPONENTS["Batch"]["required"]}
    bare = _structure(required)
    nulls = _structure({**required, **dict.fromkeys(attrs.fields_dict(Batch).keys() - required)})
    assert bare == nulls
    assert bare.usage is None
    assert bare.request_counts is None


def test_unknown_fields_are_ignored_everywhere() -> None:
    """New API fields, top level or nested, never break parsing."""
    item = _item(brand_new={"x": 1})
    item["request_counts"] = {**item["request_counts"], "skipped": 3}
    page = page_of({"object": "list", "data": [item], "has_more": False, "extra": 1})
    assert page.data[0].request_counts is not None
    assert page.data[0].request_counts.total == item["request_counts"]["total"]


def test_unknown_status_is_kept_as_plain_string() -> None:
    """A status the API adds later arrives as a `str`; known ones compare equal to strings."""
    batch = _structure(_item(status="paused"))
    assert batch.status == "paused"
    assert not isinstance(batch.status, BatchStatus)
    known = _structure(_item(status="in_progress"))
    assert known.status is BatchStatus.IN_PROGRESS
    assert known.status == "in_progress"
    assert f"{known.status}" == "in_progress"


def test_status_enum_has_the_eight_documented_values() -> None:
    """`BatchStatus` lists exactly the schema's statuses."""
    expected = COMPONENTS["Batch"]["properties"]["status"]["enum"]
    assert [status.value for status in BatchStatus] == expected


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"created_at": "1711471533"}, "data[0].created_at"),
        ({"created_at": True}, "data[0].created_at"),
        ({"id": 5}, "data[0].id"),
        ({"request_counts": {"total": 1, "completed": 1}}, "data[0].request_counts.failed"),
        ({"metadata": {"k": 1}}, "data[0].metadata['k']"),
        ({"status": None}, "data[0].status"),
    ],
)
def test_wrong_shapes_name_the_field_and_batch(change: dict[str, Any], fragment: str) -> None:
    """A wrongly typed field is rejected (never coerced) with its path and the batch id."""
    item = _item(**change)
    with pytest.raises(PayloadError) as caught:
        _structure(item)
    message = str(caught.value)
    assert fragment in message
    if isinstance(item["id"], str):
        assert item["id"] in message


def test_error_names_the_position_of_the_bad_batch() -> None:
    """With several batches, the message points at the one that is wrong."""
    good, bad = _item(), _item(id="batch_bad", created_at=None)
    parsed = parse_page({"object": "list", "data": [good, bad], "has_more": False})
    assert [batch.id for batch in parsed.batches] == [good["id"]]
    (invalid,) = parsed.invalid
    assert re.search(r"batch 'batch_bad'.*data\[1\]\.created_at", invalid.problem)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([], "JSON array, expected an object"),
        ({"has_more": False}, "no 'data' field"),
        ({"data": {}, "has_more": False}, "'data' is a JSON object"),
        ({"data": [], "has_more": "no"}, "'has_more' is a JSON string"),
        ({"data": [], "has_more": False, "last_id": 3}, "'last_id' is a JSON number"),
    ],
)
def test_envelope_problems_are_payload_errors(payload: object, fragment: str) -> None:
    """A body that is not a list page says what is wrong with it."""
    with pytest.raises(PayloadError) as caught:
        parse_page(payload)
    assert fragment in str(caught.value)


def test_synthetic_batches_cover_every_status_and_optional_shape() -> None:
    """The fake data has every status, keys absent, null and present, and is reproducible."""
    batches = synthetic_batches(400, seed=1)
    assert {batch["status"] for batch in batches} == {status.value for status in BatchStatus}
    assert any(batch.get("usage") for batch in batches)
    assert any("usage" in batch and batch["usage"] is None for batch in batches)
    lacking_model = sum("model" not in batch for batch in batches)
    lacking_usage = sum("usage" not in batch for batch in batches)
    # About one batch in thirteen lacks `model`, one in eleven `usage`.
    assert 0.04 * 400 < lacking_model < 0.12 * 400
    assert lacking_model < lacking_usage < 0.14 * 400
    assert any("model" in batch and batch["model"] is None for batch in batches)
    errors = [batch["errors"] for batch in batches if batch["errors"]]
    assert {error["object"] for error in errors} == {"list", None}
    created = [batch["created_at"] for batch in batches]
    assert created == sorted(created, reverse=True)
    assert len({batch["id"] for batch in batches}) == 400
    assert synthetic_batches(5, seed=9) == synthetic_batches(5, seed=9)


def test_synthetic_batches_look_like_real_ones() -> None:
    """Each endpoint runs a model that serves it; file ids are shaped as the API's;
    metadata carries quotes and text in other scripts."""
    batches = synthetic_batches(400, seed=1)
    for batch in batches:
        model = batch.get("model")
        if batch["endpoint"] == "/v1/embeddings":
            assert model is None or model.startswith("text-embedding-")
        elif batch["endpoint"] in ("/v1/chat/completions", "/v1/responses"):
            assert model is None or model.startswith(("gpt-", "o4-"))
        assert re.fullmatch(r"batch_[0-9a-f]{24}", batch["id"])
        for key in ("input_file_id", "output_file_id", "error_file_id"):
            assert batch[key] is None or re.fullmatch(r"file-[0-9A-Za-z]{22}", batch[key])
    values = [value for batch in batches for value in (batch["metadata"] or {}).values()]
    assert any(not value.isascii() for value in values)
    assert any('"' in value for value in values)
    assert {len(batch["metadata"]) for batch in batches if batch["metadata"]} == {2, 3, 4, 5}


def test_omitting_keys_keeps_every_value_of_a_seed() -> None:
    """Leaving keys out did not change the ids and times a seed gives."""
    first = synthetic_batches(3, seed=0)
    assert [batch["id"] for batch in first] == [
        "batch_82e2e662f728b4fa42485e3a",
        "batch_9e4d6e3c1846d424c17c6279",
        "batch_42af9fc385776e9add84f39e",
    ]
    assert [batch["created_at"] for batch in first] == [1763000000, 1762998504, 1762995972]


def _official_example() -> dict[str, Any]:
    """The list response example of the schema, made valid JSON (it elides items as `{ ... }`
    and leaves a trailing comma)."""
    operation = SCHEMA["paths"]["/batches"]["get"]
    text = operation["x-oaiMeta"]["examples"]["response"]
    text = text.replace("{ ... },", "")
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    example: dict[str, Any] = json.loads(text)
    return example


def test_official_example_response_structures() -> None:
    """The schema's example response, lacking `model` and `usage`, structures fast."""
    payload = _official_example()
    [item] = payload["data"]
    assert "model" not in item
    assert "usage" not in item
    page = page_of(payload)
    [batch] = page.data
    assert batch.model is None
    assert batch.usage is None
    assert batch.request_counts is not None
    assert batch.request_counts.completed == 95
    assert page.has_more is True
    assert structure_function(Batch)(item) == batch
