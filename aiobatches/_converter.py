"""Turning decoded JSON into models, and models back into JSON-ready dicts.

The hot path is a structure function generated once per model (`_fast`);
a value it finds unusual goes to a detailed cattrs converter, which builds
it anyway (say, a key absent rather than null) or says which field of which
batch is wrong. Scalars are checked, never coerced: `"5"` is not an `int`.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

import attrs
import cattrs

from ._fast import Unusual, structure_function
from ._models import Batch, BatchPage, BatchStatus


class PayloadError(ValueError):
    """A decoded body does not have the shape of a page; the message names the field."""


_STATUSES: Final = {status.value: status for status in BatchStatus}


def make_converter(*, detailed_validation: bool = False) -> cattrs.Converter:
    """Build a converter for the batch models: strict scalars, unknown keys ignored.

    By default attrs models are structured by the generated fast functions,
    falling back to a detailed converter for unusual values. With
    `detailed_validation` the converter is that detailed one: plain cattrs
    structure functions that record the path of each failure.
    """
    converter = cattrs.Converter(detailed_validation=detailed_validation)
    converter.register_structure_hook(str, _strict(str))
    converter.register_structure_hook(int, _strict(int))
    converter.register_structure_hook(bool, _strict(bool))
    converter.register_structure_hook(BatchStatus | str, _structure_status)
    converter.register_unstructure_hook(BatchStatus, _unstructure_status)
    if not detailed_validation:
        detailed = make_converter(detailed_validation=True)
        converter.register_structure_hook_factory(
            attrs.has,
            lambda cls: _tolerant(structure_function(cls), detailed.get_structure_hook(cls)),
        )
    return converter


def _tolerant(fast: Any, detailed: Any) -> Any:
    """A hook that tries the generated function and falls back to the detailed one."""

    def structure(value: object, cls: object) -> object:
        try:
            return fast(value)
        except Unusual:
            return detailed(value, cls)

    return structure


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


_detailed: Final = make_converter(detailed_validation=True)
_fast_batch: Final = structure_function(Batch)
_structure_batch: Final = _tolerant(_fast_batch, _detailed.get_structure_hook(Batch))


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
        batches = [_fast_batch(item) for item in items]
    except Unusual:
        try:
            batches = [_structure_batch(item, Batch) for item in items]
        except Exception:  # noqa: BLE001 - any failure is re-examined in detail just below
            _explain(items)
    return BatchPage(batches, first_id, last_id, has_more)


def unstructure_batch(batch: Batch) -> dict[str, Any]:
    """The batch as a JSON-ready dict with the API's field names and values."""
    result: dict[str, Any] = _detailed.unstructure(batch)
    return result


def _explain(items: list[Any]) -> NoReturn:
    """Find the first item the fast path rejected and describe what is wrong with it."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            _fail(f"data[{index}] is a JSON {_json_kind(item)}, expected a batch object")
        try:
            _detailed.structure(item, Batch)
        except Exception as error:  # noqa: BLE001 - cattrs reports many exception types
            batch_id = item.get("id")
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
