"""Null equals absent at every depth, on both paths; pages are read item by item."""

from __future__ import annotations

import copy
import json
import types
import typing
from typing import Any

import attrs
import cattrs
import pytest

from aiobatches import (
    Batch,
    BatchError,
    BatchErrors,
    BatchRequestCounts,
    BatchUsage,
    InputTokensDetails,
    OutputTokensDetails,
)
from aiobatches._converter import (
    MAX_INVALID,
    InvalidBatch,
    PayloadError,
    _detailed,
    make_converter,
    parse_page,
)
from aiobatches._fast import Unusual, structure_function
from aiobatches.testing import synthetic_batches

fast = structure_function(Batch)

RICH: dict[str, Any] = {
    "id": "batch_rich",
    "object": "batch",
    "endpoint": "/v1/responses",
    "model": "gpt-5-2025-08-07",
    "errors": {
        "object": "list",
        "data": [
            {"code": "invalid_json_line", "line": 3, "message": "Bad line.", "param": "body"},
            {"code": "invalid_request", "line": 9, "message": "Wrong url.", "param": "url"},
        ],
    },
    "input_file_id": "file-in",
    "completion_window": "24h",
    "status": "failed",
    "output_file_id": "file-out",
    "error_file_id": "file-err",
    "created_at": 1_700_000_000,
    "in_progress_at": 1_700_000_001,
    "expires_at": 1_700_086_400,
    "finalizing_at": 1_700_000_002,
    "completed_at": 1_700_000_003,
    "failed_at": 1_700_000_004,
    "expired_at": 1_700_000_005,
    "cancelling_at": 1_700_000_006,
    "cancelled_at": 1_700_000_007,
    "request_counts": {"total": 10, "completed": 7, "failed": 3},
    "metadata": {"customer_id": "user_1"},
    "usage": {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 40},
        "output_tokens": 50,
        "output_tokens_details": {"reasoning_tokens": 20},
        "total_tokens": 150,
    },
}
"""A batch with every key present and every nested object filled, so every path exists."""

Path = tuple[str | int, ...]


def _model_fields(cls: type, prefix: Path = ()) -> list[tuple[Path, type, attrs.Attribute[Any]]]:
    """Every (path in RICH, model class, field) of `cls` and of the models nested in it.

    This walks the model classes (a fixed, shallow tree), never input.
    """
    found = []
    hints = typing.get_type_hints(cls)
    for field in attrs.fields(cls):
        path = (*prefix, field.name)
        found.append((path, cls, field))
        hint = hints[field.name]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        for option in options:
            if attrs.has(option):
                found += _model_fields(option, path)
            elif typing.get_origin(option) is list and attrs.has(typing.get_args(option)[0]):
                found += _model_fields(typing.get_args(option)[0], (*path, 0))
    return found


FIELDS = _model_fields(Batch)
DEFAULTED = [entry for entry in FIELDS if entry[2].default is not attrs.NOTHING]
REQUIRED = [entry for entry in FIELDS if entry[2].default is attrs.NOTHING]


def _dotted(path: Path) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)


def _with(path: Path, *, value: Any = None, remove: bool = False) -> dict[str, Any]:
    """A copy of RICH with the value at `path` set to `value`, or its key removed."""
    item = copy.deepcopy(RICH)
    parent: Any = item
    for step in path[:-1]:
        parent = parent[step]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return item


def _get(batch: Batch, path: Path) -> Any:
    value: Any = batch
    for step in path:
        value = value[step] if isinstance(step, int) else getattr(value, step)
    return value


def _both_paths(item: dict[str, Any]) -> Batch:
    """Structure `item` on the fast path, checking that cattrs builds the very same."""
    got: Batch = fast(item)
    assert got == _detailed.structure(item, Batch)
    return got


def _page(*items: Any, **envelope: Any) -> dict[str, Any]:
    return {"object": "list", "data": list(items), "has_more": False, **envelope}


def test_every_model_is_reached_by_the_walk() -> None:
    """The walk below covers every model class, so 'every depth' is every model."""
    reached = {cls for _, cls, _ in FIELDS}
    assert reached == {
        Batch,
        BatchErrors,
        BatchError,
        BatchRequestCounts,
        BatchUsage,
        InputTokensDetails,
        OutputTokensDetails,
    }
    assert _both_paths(RICH).usage is not None


@pytest.mark.parametrize(
    ("path", "field"), [pytest.param(path, field, id=_dotted(path)) for path, _, field in DEFAULTED]
)
def test_null_and_absent_both_give_the_default(path: Path, field: attrs.Attribute[Any]) -> None:
    """At any depth, null and an absent key both give the field's default, on both paths."""
    null = _both_paths(_with(path, value=None))
    absent = _both_paths(_with(path, remove=True))
    assert null == absent
    default: Any = field.default
    # attrs' stubs type `Factory` as a function returning the value, not as a class.
    is_factory = isinstance(default, attrs.Factory)  # type: ignore[arg-type]
    expected = default.factory() if is_factory else default
    assert _get(absent, path) == expected
    assert _get(absent, path) is not None or default is None


@pytest.mark.parametrize("path", [path for path, _, _ in REQUIRED], ids=_dotted)
@pytest.mark.parametrize("remove", [False, True], ids=["null", "absent"])
def test_required_fields_stay_required_at_every_depth(path: Path, *, remove: bool) -> None:
    """A null or absent required field, at any depth, invalidates the batch and is named."""
    item = _with(path, remove=remove)
    with pytest.raises(Unusual):
        fast(item)
    with pytest.raises(Exception):  # noqa: PT011, B017 - cattrs raises several kinds
        _detailed.structure(item, Batch)
    parsed = parse_page(_page(item))
    assert parsed.batches == []
    [invalid] = parsed.invalid
    assert f"data[0]{_dotted(path)}" in invalid.problem
    named = "a batch with no id" if path == ("id",) else "batch 'batch_rich'"
    assert invalid.problem.startswith(f"{named} is invalid: ")
    expected = "required field missing" if remove else "got null"
    assert expected in invalid.problem


def test_real_servers_errors_with_null_object() -> None:
    """`errors.object: null` is read as real servers send it; null `data` is an empty list."""
    item = {**RICH, "errors": {"object": None, "data": [{"code": "x", "line": None}]}}
    errors = _both_paths(item).errors
    assert errors == BatchErrors("list", [BatchError(code="x")])
    empty = _both_paths({**RICH, "errors": {"object": None, "data": None}}).errors
    assert empty == BatchErrors("list", [])
    assert empty is not None
    assert empty.data is not _both_paths({**RICH, "errors": {}}).errors.data  # type: ignore[union-attr]


def test_bare_batch_has_every_optional_field_none() -> None:
    """A batch of only its seven required keys structures fast, everything else None."""
    required = {str(path[0]) for path, cls, _ in REQUIRED if cls is Batch}
    bare = _both_paths({key: RICH[key] for key in required})
    assert {field.name for field in attrs.fields(Batch) if getattr(bare, field.name) is None} == {
        field.name for field in attrs.fields(Batch)
    } - required


def test_unknown_keys_are_ignored_at_every_depth() -> None:
    """A key the models do not know, in any object, changes nothing."""
    item = copy.deepcopy(RICH)
    objects = [
        item,
        item["errors"],
        *item["errors"]["data"],
        item["request_counts"],
        item["usage"],
        item["usage"]["input_tokens_details"],
        item["usage"]["output_tokens_details"],
    ]
    for number, value in enumerate(objects):
        value[f"new_field_{number}"] = {"nested": [1, None]}
    assert _both_paths(item) == _both_paths(RICH)


def test_integers_of_any_size_are_valid() -> None:
    """Integers beyond 64 bits (from the json module) are valid in every integer field."""
    item = copy.deepcopy(RICH)
    int_paths = [
        path
        for path, cls, field in FIELDS
        if int in typing.get_args(typing.get_type_hints(cls)[field.name])
        or typing.get_type_hints(cls)[field.name] is int
    ]
    assert len(int_paths) >= 15
    for number, path in enumerate(int_paths):
        parent: Any = item
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = 2**70 + number
    decoded = json.loads(json.dumps(_page(item)))
    [raw] = decoded["data"]
    [batch] = parse_page(decoded).batches
    for number, path in enumerate(int_paths):
        assert _get(batch, path) == 2**70 + number
    assert batch == _both_paths(raw)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"errors": "oops"}, "expected a BatchErrors object, got str @ data[0].errors"),
        ({"errors": {"data": "abc"}}, "expected list, got str @ data[0].errors.data"),
        (
            {"errors": {"data": [7]}},
            "expected a BatchError object, got int @ data[0].errors.data[0]",
        ),
        ({"usage": []}, "expected a BatchUsage object, got list @ data[0].usage"),
        ({"metadata": ["k"]}, "expected dict, got list @ data[0].metadata"),
        ({"created_at": 1.0}, "expected int, got float @ data[0].created_at"),
    ],
)
def test_strings_and_lists_are_not_objects(change: dict[str, Any], fragment: str) -> None:
    """Where an object or list belongs, nothing else is read as one; the problem says what came."""
    item = {**RICH, **change}
    with pytest.raises(Unusual):
        fast(item)
    [invalid] = parse_page(_page(item)).invalid
    assert fragment in invalid.problem


def test_a_huge_bad_list_is_reported_by_its_first_element() -> None:
    """A list or dict of many bad elements yields one short problem, about the first."""
    item = {
        **RICH,
        "errors": {"data": [1] * 200_000},
        "metadata": dict.fromkeys(map(str, range(9)), 1),
    }
    [invalid] = parse_page(_page(item)).invalid
    assert "data[0].errors.data[0]" in invalid.problem
    assert "data[1]" not in invalid.problem
    assert len(invalid.problem) < 400
    metadata_only = {**RICH, "metadata": {str(key): key for key in range(200_000)}}
    [invalid] = parse_page(_page(metadata_only)).invalid
    assert invalid.problem.count("@") == 1
    assert "data[0].metadata['0']" in invalid.problem


def _deep(depth: int) -> Any:
    """A value nested `depth` levels, built without recursion."""
    value: Any = []
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    "key", ["id", "errors", "metadata", "request_counts", "usage", "created_at", "unknown"]
)
def test_deep_input_never_recurses(key: str) -> None:
    """Input nested far past the recursion limit is invalid (or ignored), never a RecursionError."""
    item = {**RICH, key: _deep(20_000)}
    parsed = parse_page(_page(RICH, item, _deep(20_000)))
    assert parsed.count == 3
    if key == "unknown":
        assert len(parsed.batches) == 2
        assert [invalid.index for invalid in parsed.invalid] == [2]
    else:
        assert [invalid.index for invalid in parsed.invalid] == [1, 2]
        assert parsed.invalid[0].batch_id == (None if key == "id" else "batch_rich")
    assert parsed.last_item_id is None


def test_parse_page_keeps_the_valid_batches_around_invalid_ones() -> None:
    """Invalid items become InvalidBatch entries; the valid ones around them are kept in order."""
    good = synthetic_batches(5, seed=2)
    bad_type = {**good[1], "request_counts": {"total": "10", "completed": 1, "failed": 0}}
    items = [good[0], bad_type, good[2], 7, {**good[3], "id": 5}, good[4]]
    parsed = parse_page(_page(*items, first_id=good[0]["id"], last_id=good[4]["id"]))
    assert [batch.id for batch in parsed.batches] == [good[index]["id"] for index in (0, 2, 4)]
    assert parsed.batches == [_both_paths(good[index]) for index in (0, 2, 4)]
    assert parsed.invalid == (
        InvalidBatch(
            1,
            good[1]["id"],
            f"batch {good[1]['id']!r} is invalid: "
            "expected int, got str @ data[1].request_counts.total",
        ),
        InvalidBatch(3, None, "data[3] is a JSON number, expected a batch object"),
        InvalidBatch(4, None, "a batch with no id is invalid: expected str, got int @ data[4].id"),
    )
    assert parsed.count == 6
    assert parsed.last_item_id == good[4]["id"]
    assert (parsed.first_id, parsed.last_id, parsed.has_more) == (
        good[0]["id"],
        good[4]["id"],
        False,
    )


def test_a_page_of_garbage_fails_whole_in_bounded_work() -> None:
    """Past 100 malformed items a page is refused whole, never read into millions of records."""
    good = synthetic_batches(1, seed=4)[0]
    assert len(parse_page(_page(good, *[0] * MAX_INVALID)).invalid) == MAX_INVALID
    with pytest.raises(PayloadError, match="more than 100 of its items"):
        parse_page(_page(good, *[0] * 1_000_000))


def test_parse_page_of_valid_batches() -> None:
    """A page of realistic batches (keys omitted as real servers do) is all valid."""
    items = synthetic_batches(100, seed=3)
    assert any("usage" not in item for item in items)
    parsed = parse_page(_page(*items, has_more=True))
    assert parsed.invalid == ()
    assert parsed.batches == [_both_paths(item) for item in items]
    assert parsed.count == 100
    assert parsed.last_item_id == items[-1]["id"]
    assert parsed.has_more is True


def test_parse_page_releases_each_raw_item_once_read() -> None:
    """A page's raw items are let go as their batches are built, valid or not, so that a page
    never holds its raw and its structured batches at once."""
    good = synthetic_batches(3, seed=6)
    payload = _page(good[0], 7, good[1], {**good[2], "created_at": "soon"})
    parsed = parse_page(payload)
    assert payload["data"] == [None, None, None, None]
    assert [batch.id for batch in parsed.batches] == [good[0]["id"], good[1]["id"]]
    assert [item.index for item in parsed.invalid] == [1, 3]
    assert (parsed.count, parsed.last_item_id) == (4, good[2]["id"])


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        ({**RICH, "id": "batch_last", "created_at": "bad"}, "batch_last"),
        ({**RICH, "id": 12}, None),
        ("batch_last", None),
    ],
)
def test_last_item_id_is_read_from_the_raw_item(last: Any, expected: str | None) -> None:
    """The last item's id is the resume point even when that item is invalid."""
    parsed = parse_page(_page(RICH, last))
    assert parsed.last_item_id == expected
    assert parsed.count == 2


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        ({}, (None, None, None)),
        ({"first_id": None, "last_id": None, "has_more": None}, (None, None, None)),
        ({"first_id": "a", "last_id": "b", "has_more": True}, ("a", "b", True)),
    ],
)
def test_envelope_fields_absent_or_null_are_none(
    envelope: dict[str, Any], expected: tuple[Any, ...]
) -> None:
    """Absent or null `first_id`, `last_id`, `has_more` are None; an empty page has no last id."""
    parsed = parse_page({"data": [], **envelope})
    assert (parsed.first_id, parsed.last_id, parsed.has_more) == expected
    assert (parsed.batches, parsed.invalid, parsed.count, parsed.last_item_id) == ([], (), 0, None)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([], "response body is a JSON array, expected an object"),
        ({"has_more": False}, "no 'data' field"),
        ({"data": None}, "no 'data' field"),
        ({"data": {}}, "'data' is a JSON object, expected an array"),
        ({"data": [], "has_more": "no"}, "'has_more' is a JSON string, expected a boolean"),
        ({"data": [], "first_id": 3}, "'first_id' is a JSON number"),
        ({"data": [], "last_id": []}, "'last_id' is a JSON array"),
    ],
)
def test_parse_page_raises_only_for_the_envelope(payload: object, fragment: str) -> None:
    """A body that is not a list page is a PayloadError saying what is wrong."""
    with pytest.raises(PayloadError) as caught:
        parse_page(payload)
    assert fragment in str(caught.value)


WRONG_VALUES = [None, "text", 1.5, True, [1], {"k": 1}, [{"k": 1}]]


def _malformed() -> list[Any]:
    """RICH broken in every way at every depth: each field given each wrong kind of value,
    each required one removed, and items that are no object at all."""
    items: list[Any] = [_with(path, remove=True) for path, _, _ in REQUIRED]
    for path, _, _ in FIELDS:
        for value in WRONG_VALUES:
            item = _with(path, value=value)
            try:
                _detailed.structure(item, Batch)
            except Exception:  # only the items cattrs rejects are malformed ones
                items.append(item)
    return [*items, *WRONG_VALUES]


def _messages(error: BaseException) -> list[str]:
    """Every message a traceback of `error` would print: its own, its notes, its parts',
    and those of the exceptions chained to it; and cattrs' summary of it."""
    found, pending = [], [error]
    while pending:
        current = pending.pop()
        found += [str(current), *map(str, getattr(current, "__notes__", ()))]
        if isinstance(current, BaseExceptionGroup):
            pending += current.exceptions
        chained = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
        if chained is not None:
            pending.append(chained)
    if isinstance(error, cattrs.BaseValidationError):
        found += cattrs.transform_error(error)
    return found


def test_messages_name_classes_as_users_import_them() -> None:
    """No message about a malformed batch, ours or cattrs', names a private module."""
    items = _malformed()
    assert len(items) > 150
    converters = [make_converter(), make_converter(detailed_validation=True)]
    named_batch = 0
    for item in items:
        messages = [invalid.problem for invalid in parse_page(_page(item)).invalid]
        for converter in converters:
            with pytest.raises(Exception) as caught:  # noqa: PT011 - cattrs raises several kinds
                converter.structure(item, Batch)
            messages += _messages(caught.value)
        assert len(messages) >= 3  # the page's, and each converter's
        assert not [message for message in messages if "aiobatches._" in message], item
        named_batch += any("Batch" in message for message in messages)
    assert named_batch > 150


# --- Azure OpenAI's published shapes: a lone errors.data object, a numeric-string line ---------

AZURE_ERROR = {"code": "invalid_json_line", "line": "12", "message": "Bad line.", "param": None}
"""One `BatchErrorData` as Azure's published spec (2024-10-21) has it: `line` a string."""


@pytest.mark.parametrize(
    "data",
    [AZURE_ERROR, [AZURE_ERROR], {**AZURE_ERROR, "line": 12}],
    ids=["lone object", "list", "lone object, int line"],
)
def test_azure_errors_data_is_a_list_of_one_on_both_paths(data: Any) -> None:
    """A lone `errors.data` object is a one-element list, and a line of digits is its int."""
    batch = _both_paths({**RICH, "errors": {"object": "list", "data": data}})
    assert batch.errors == BatchErrors("list", [BatchError("invalid_json_line", 12, "Bad line.")])


@pytest.mark.parametrize("line", ["0", "7", "007", "9" * 40])
def test_a_line_of_ascii_digits_is_its_int(line: str) -> None:
    """Any string of ASCII digits is read as the int it spells, on both paths."""
    batch = _both_paths({**RICH, "errors": {"data": {"line": line}}})
    assert batch.errors is not None
    assert batch.errors.data[0].line == int(line)


@pytest.mark.parametrize(
    "line",
    ["", "one", "-1", "+1", " 1", "1 ", "1.0", "1_000", "\uff11", "\u00b2", True, 1.0, ["1"]],
)
def test_a_line_that_is_no_number_names_the_field_and_the_batch(line: Any) -> None:
    """A line that is neither an int nor ASCII digits is an invalid batch, naming where."""
    item = {**RICH, "errors": {"data": {"line": line}}}
    with pytest.raises(Unusual):
        fast(item)
    [invalid] = parse_page(_page(item)).invalid
    assert invalid.batch_id == "batch_rich"
    assert invalid.problem.startswith("batch 'batch_rich' is invalid: expected int or a string")
    assert invalid.problem.endswith("@ data[0].errors.data[0].line")


def test_a_line_of_more_digits_than_int_reads_is_invalid() -> None:
    """A digit string beyond Python's int-from-string limit is refused, not a ValueError, and
    the message says how many digits it had rather than calling it no string of digits."""
    item = {**RICH, "errors": {"data": {"line": "9" * 5000}}}
    [invalid] = parse_page(_page(item)).invalid
    assert "errors.data[0].line" in invalid.problem
    assert "got 5000 digits" in invalid.problem


def test_digit_strings_stay_refused_in_every_other_int() -> None:
    """Only `line` takes digits: a count or timestamp sent as a string is still invalid."""
    for change in (
        {"created_at": "1700000000"},
        {"request_counts": {**RICH["request_counts"], "total": "10"}},
    ):
        [invalid] = parse_page(_page({**RICH, **change})).invalid
        assert "expected int, got str" in invalid.problem


def test_lone_object_is_read_only_where_a_list_of_objects_belongs() -> None:
    """The page's own `data` must stay an array: a lone batch object there is no page."""
    with pytest.raises(PayloadError, match="'data' is a JSON object"):
        parse_page({"object": "list", "data": RICH})
