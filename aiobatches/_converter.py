"""Turning decoded JSON into models, and models back into JSON-ready dicts.

Two converters are built once: a fast one for the hot path and a detailed one
that only runs after the fast one failed, to say which field of which batch is
wrong. Scalars are checked, never coerced: `"5"` is not an `int`.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

import cattrs

from ._models import Batch, BatchPage, BatchStatus


class PayloadError(ValueError):
    """A decoded body does not have the shape of a page; the message names the field."""


_STATUSES: Final = {status.value: status for status in BatchStatus}


def make_converter(*, detailed_validation: bool = False) -> cattrs.Converter:
    """Build a converter for the batch models: strict scalars, unknown keys ignored.

    With `detailed_validation` the structure functions record the path of each
    failure (slower); the fast converter leaves that to a second pass.
    """
    converter = cattrs.Converter(detailed_validation=detailed_validation)
    converter.register_structure_hook(str, _strict(str))
    converter.register_structure_hook(int, _strict(int))
    converter.register_structure_hook(bool, _strict(bool))
    converter.register_structure_hook(BatchStatus | str, _structure_status)
    converter.register_unstructure_hook(BatchStatus, _unstructure_status)
    return converter


def _strict(kind: type[Any]) -> Any:
    """A hook that passes a value of exactly `kind` through and rejects anything else."""

    def structure(value: object, _: object) -> object:
        if type(value) is kind:
            return value
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")

    return structure


def _structure_status(value: object, _: object) -> BatchStatus | str:
    if type(value) is not str:
        raise TypeError(f"expected str, got {type(value).__name__}")
    return _STATUSES.get(value, value)


def _unstructure_status(value: BatchStatus) -> str:
    return value.value


_fast: Final = make_converter()
_detailed: Final = make_converter(detailed_validation=True)
_structure_batch: Final = _fast.get_structure_hook(Batch)


def structure_page(payload: object) -> BatchPage:
    """Check a decoded list response and build its `BatchPage`, or raise `PayloadError`."""
    if not isinstance(payload, dict):
        _fail(f"response body is a JSON {_json_kind(payload)}, expected an object")
    try:
        items = payload["data"]
        has_more = payload["has_more"]
    except KeyError as missing:
        _fail(f"response has no {missing.args[0]!r} field")
    if type(items) is not list:
        _fail(f"'data' is a JSON {_json_kind(items)}, expected an array")
    if type(has_more) is not bool:
        _fail(f"'has_more' is a JSON {_json_kind(has_more)}, expected a boolean")
    first_id = _optional_str(payload, "first_id")
    last_id = _optional_str(payload, "last_id")
    try:
        batches = [_structure_batch(item, Batch) for item in items]
    except Exception:  # noqa: BLE001 - any failure is re-examined in detail just below
        _explain(items)
    return BatchPage(batches, first_id, last_id, has_more)


def unstructure_batch(batch: Batch) -> dict[str, Any]:
    """The batch as a JSON-ready dict with the API's field names and values."""
    result: dict[str, Any] = _fast.unstructure(batch)
    return result


def _explain(items: list[Any]) -> NoReturn:
    """Find the first item the fast path rejected and describe what is wrong with it."""
    for index, item in enumerate(items):
        try:
            _detailed.structure(item, Batch)
        except Exception as error:  # noqa: BLE001 - cattrs reports many exception types
            batch_id = item.get("id") if isinstance(item, dict) else None
            where = f"batch {batch_id!r}" if isinstance(batch_id, str) else "a batch with no id"
            problems = _describe(error, f"data[{index}]")
            _fail(f"{where} is invalid: {problems}")
    _fail("the page's batches could not be read")  # pragma: no cover - fast and slow disagree


def _describe(error: Exception, path: str) -> str:
    if isinstance(error, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(error, path=path))
    return f"{error} @ {path}"


def _optional_str(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and type(value) is not str:
        _fail(f"{key!r} is a JSON {_json_kind(value)}, expected a string or null")
    return value


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _fail(message: str) -> NoReturn:
    raise PayloadError(message)
