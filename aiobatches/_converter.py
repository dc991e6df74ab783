"""Turning decoded JSON into models, and models back into JSON-ready dicts.

The hot path is a structure function generated once per model (`_fast`);
a value it finds unusual goes to a detailed cattrs converter, which says
which field of which batch is wrong (or builds what JSON never yields, such
as a dict subclass). A class the generator refuses (validators, converters,
post-init, a cached hash) is left to cattrs alone. Both read a null as the
field's default, as an absent key. Scalars are checked, never coerced: `"5"`
is not an `int`, save in a field marked `NUMERIC_STRING` (Azure OpenAI's
`BatchError.line`); and a lone object where a list of objects belongs is a list
of one. Messages name classes as users import them, never by module.
"""

from __future__ import annotations

import datetime
import enum
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, Generic, NoReturn, TypeVar

import attrs
import cattrs
import cattrs.gen
from attrs import frozen

from ._fast import Unsupported, Unusual, digits_value, moment_value, structure_function
from ._models import NUMERIC_STRING, AnyBatch, Batch, BatchStatus, MessageBatchStatus

B = TypeVar("B", bound=AnyBatch)


class PayloadError(ValueError):
    """A decoded body does not have the shape of a page; the message names the field."""


@frozen
class InvalidBatch:
    """A list item that is not a valid batch."""

    index: int
    """Its position in the page's `data` array."""
    batch_id: str | None
    """Its `"id"` if that is a string, else None."""
    problem: str
    """What is wrong, naming the batch and the field path, e.g. `... @ data[3].created_at`."""


@frozen
class ParsedPage(Generic[B]):
    """A list page read item by item: the valid batches, and what is wrong with the others."""

    batches: list[B]
    """The valid items, in order."""
    invalid: tuple[InvalidBatch, ...]
    """The invalid items, in order of index."""
    count: int
    """How many items `data` held, valid or not."""
    last_item_id: str | None
    """The `"id"` of the last raw item if it is a string (valid or not), else None."""
    first_id: str | None
    last_id: str | None
    has_more: bool | None
    """None when the server did not say (absent or null)."""


MAX_INVALID: Final = 100
"""More malformed items than this on one page is not a page of batches at all."""


class _WrongKindError(TypeError):
    """A value of the wrong kind; the message says what was expected and what came."""


def make_converter(*, detailed_validation: bool = False) -> cattrs.Converter:
    """Build a converter for the batch models: strict scalars, unknown keys ignored.

    A null where a field has a default means the default, as an absent key
    does. By default attrs models are structured by the generated fast
    functions, falling back to a detailed converter for unusual values (and
    for classes the generator refuses). With `detailed_validation` the
    converter is that detailed one: cattrs structure functions that record
    the path of a failure.
    """
    converter = cattrs.Converter(detailed_validation=detailed_validation)
    converter.register_structure_hook(str, _strict(str))
    converter.register_structure_hook(int, _strict(int))
    converter.register_structure_hook(bool, _strict(bool))
    converter.register_structure_hook(datetime.datetime, _structure_moment)
    for statuses in (BatchStatus, MessageBatchStatus):
        converter.register_structure_hook(statuses | str, _status_hook(statuses))
    converter.register_structure_hook_factory(_is_list, _list_hook)
    converter.register_structure_hook_factory(_is_dict, _dict_hook)
    converter.register_unstructure_hook(enum.StrEnum, _unstructure_status)
    converter.register_unstructure_hook(datetime.datetime, _unstructure_moment)
    if detailed_validation:
        converter.register_structure_hook_factory(attrs.has, _model_hook)
    else:
        detailed = make_converter(detailed_validation=True)
        converter.register_structure_hook_factory(
            attrs.has, lambda cls: _fast_hook(cls, detailed.get_structure_hook(cls))
        )
    return converter


def _fast_hook(cls: type, detailed: Any) -> Any:
    """The generated function for `cls` falling back to `detailed`, or `detailed` alone
    for a class the generator refuses."""
    try:
        fast = structure_function(cls)
    except Unsupported:
        return detailed
    return _tolerant(fast, detailed)


def _tolerant(fast: Any, detailed: Any) -> Any:
    """A hook that tries the generated function and falls back to the detailed one."""

    def structure(value: object, cls: object) -> object:
        try:
            return fast(value)
        except Unusual:
            pass
        # Outside the `except`, so that a failure does not drag the private signal along.
        return detailed(value, cls)

    return structure


def _model_hook(cls: type, converter: cattrs.Converter) -> Any:
    """cattrs' structure function for `cls`, given only objects, with nulls read as absent.

    cattrs reads any container with `in` and `[]` (a string would pass as an
    object whose fields are all absent), and takes a null as a value to check.
    """
    digits = cattrs.gen.override(struct_hook=_int_or_digits)
    overrides: dict[str, Any] = {
        field.name: digits for field in attrs.fields(cls) if field.metadata.get(NUMERIC_STRING)
    }
    generated: Any = cattrs.gen.make_dict_structure_fn(cls, converter, **overrides)
    defaulted = frozenset(
        field.name for field in attrs.fields(cls) if field.default is not attrs.NOTHING
    )
    expected = f"a {cls.__name__} object"

    def structure(value: object, _: object) -> object:
        if not isinstance(value, dict):
            raise _WrongKindError(f"expected {expected}, got {_kind(value)}")
        present = {
            key: item for key, item in value.items() if item is not None or key not in defaulted
        }
        return generated(present, cls)

    return structure


def _is_list(kind: Any) -> bool:
    return typing.get_origin(kind) is list


def _list_hook(kind: Any, converter: cattrs.Converter) -> Any:
    """Structure a list, given only a list, stopping at its first bad element.

    cattrs would iterate any iterable (a string too) and record every bad
    element: a hostile list of millions would cost millions of exceptions.
    """
    (element,) = typing.get_args(kind)
    handler = converter.get_structure_hook(element)
    of_objects = attrs.has(element)
    detailed = converter.detailed_validation

    def structure(value: object, _: object) -> list[Any]:
        if of_objects and isinstance(value, dict):
            value = [value]  # a lone object for a list of one, as Azure OpenAI sends `errors.data`
        if not isinstance(value, list):
            raise _WrongKindError(f"expected list, got {_kind(value)}")
        read = _read_each(
            enumerate(value),
            lambda _, item: handler(item, element),
            kind=kind,
            element=element,
            detailed=detailed,
        )
        return [item for _, item in read]

    return structure


def _is_dict(kind: Any) -> bool:
    return typing.get_origin(kind) is dict


def _dict_hook(kind: Any, converter: cattrs.Converter) -> Any:
    """Structure a dict, given only a dict, stopping at its first bad key or value."""
    key_kind, value_kind = typing.get_args(kind)
    key_handler = converter.get_structure_hook(key_kind)
    value_handler = converter.get_structure_hook(value_kind)
    detailed = converter.detailed_validation

    def pair(key: Any, item: Any) -> tuple[Any, Any]:
        return key_handler(key, key_kind), value_handler(item, value_kind)

    def structure(value: object, _: object) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise _WrongKindError(f"expected dict, got {_kind(value)}")
        read = _read_each(value.items(), pair, kind=kind, element=value_kind, detailed=detailed)
        return dict(entry for _, entry in read)

    return structure


def _read_each(
    pairs: Iterable[tuple[Any, Any]],
    read: Callable[[Any, Any], Any],
    *,
    kind: Any,
    element: Any,
    detailed: bool,
) -> Iterator[tuple[Any, Any]]:
    """Each (position, element) of a container with its element read, up to the first
    failure; if `detailed`, that failure is wrapped so that its path names the position."""
    for position, item in pairs:
        try:
            yield position, read(position, item)
        except Exception as error:
            if not detailed:
                raise
            raise _element_error(error, kind, position, element) from None


def _element_error(
    error: Exception, kind: Any, index: int | str, element: Any
) -> cattrs.IterableValidationError:
    """`error` wrapped as cattrs wraps a bad element, so that its path names the position."""
    note = f"Structuring {kind} @ {index!r}"
    error.add_note(cattrs.errors.IterableValidationNote(note, index, element))
    return cattrs.IterableValidationError(f"While structuring {kind!r}", [error], kind)


def _strict(kind: type[Any]) -> Any:
    """A hook that passes a value of exactly `kind` through and rejects anything else."""

    def structure(value: object, _: object) -> object:
        if type(value) is kind:
            return value
        raise _WrongKindError(f"expected {kind.__name__}, got {_kind(value)}")

    return structure


def _int_or_digits(value: object, _: object) -> int:
    if type(value) is int:
        return value
    number = digits_value(value)
    if number is not None:
        return number
    if type(value) is str and value.isascii() and value.isdigit():
        raise _WrongKindError(f"expected int or a string of digits, got {len(value)} digits")
    raise _WrongKindError(f"expected int or a string of digits, got {_kind(value)}")


def _status_hook(statuses: type[enum.StrEnum]) -> Callable[[object, object], object]:
    """A status: a member of `statuses`, or a plain `str` for one added later."""
    members = {status.value: status for status in statuses}

    def structure(value: object, _: object) -> object:
        if type(value) is not str:
            raise _WrongKindError(f"expected str, got {_kind(value)}")
        return members.get(value, value)

    return structure


def _unstructure_status(value: enum.StrEnum) -> str:
    return value.value


def _structure_moment(value: object, _: object) -> datetime.datetime:
    moment = moment_value(value)
    if moment is None:
        got = repr(value)[:48] if type(value) is str else _kind(value)
        raise _WrongKindError(f"expected an RFC 3339 date-time with a zone, got {got}")
    return moment


def _unstructure_moment(value: datetime.datetime) -> str:
    """RFC 3339, UTC written `Z` as the API writes it: read back, the same moment."""
    text = value.isoformat()
    return text[:-6] + "Z" if value.utcoffset() == datetime.timedelta(0) else text


def _kind(value: object) -> str:
    """The Python type of a decoded JSON value, as the error messages name it."""
    return "null" if value is None else type(value).__name__


_detailed: Final = make_converter(detailed_validation=True)


@typing.overload
def parse_page(payload: object) -> ParsedPage[Batch]: ...
@typing.overload
def parse_page(payload: object, model: type[B]) -> ParsedPage[B]: ...
def parse_page(payload: object, model: type[Any] = Batch) -> ParsedPage[Any]:
    """Check a decoded list response's envelope and read its items one by one.

    Only an envelope problem raises `PayloadError`; an item that is not a
    valid batch becomes an `InvalidBatch`, and the items around it are kept.
    The payload is consumed: each item of its `data` is replaced by None as
    soon as it is read, so its raw objects are freed while the batch is built.
    Holding a whole raw page beside its batches would double the objects
    that wake the garbage collector, and it would scan both (benchmarks/README.md).
    """
    if not isinstance(payload, dict):
        _fail(f"response body is a JSON {_json_kind(payload)}, expected an object")
    items = payload.get("data")
    if items is None:
        _fail("response has no 'data' field")
    if type(items) is not list:
        _fail(f"'data' is a JSON {_json_kind(items)}, expected an array")
    has_more = payload.get("has_more")
    if has_more is not None and type(has_more) is not bool:
        _fail(f"'has_more' is a JSON {_json_kind(has_more)}, expected a boolean")
    first_id = _optional_str(payload, "first_id")
    last_id = _optional_str(payload, "last_id")
    last_item_id = _item_id(items[-1]) if items else None
    batches, invalid = _parse_items(items, model)
    return ParsedPage(batches, invalid, len(items), last_item_id, first_id, last_id, has_more)


def _parse_items(items: list[Any], model: type[B]) -> tuple[list[B], tuple[InvalidBatch, ...]]:
    """Structure each item on its own, so that one invalid item costs only itself, and
    release each from `items` once read."""
    fast = structure_function(typing.cast("type", model))
    batches: list[B] = []
    invalid: list[InvalidBatch] = []
    for index, item in enumerate(items):
        items[index] = None
        try:
            batches.append(fast(item))
            continue
        except Unusual:
            read = _read_item(index, item, model)
        if isinstance(read, InvalidBatch):
            invalid.append(read)
            if len(invalid) > MAX_INVALID:  # bounded work on a page of garbage
                _fail(f"more than {MAX_INVALID} of its items are not valid batches")
        else:
            batches.append(read)
    return batches, tuple(invalid)


def _read_item(index: int, item: object, model: type[B]) -> B | InvalidBatch:
    """`data[index]` structured in detail, or what is wrong with it."""
    if not isinstance(item, dict):
        problem = f"data[{index}] is a JSON {_json_kind(item)}, expected a batch object"
        return InvalidBatch(index, None, problem)
    try:
        batch: B = _detailed.structure(item, model)
    except Exception as error:  # noqa: BLE001 - cattrs reports many exception types
        batch_id = _item_id(item)
        where = f"batch {batch_id!r}" if batch_id is not None else "a batch with no id"
        problem = f"{where} is invalid: {_describe(error, f'data[{index}]')}"
        return InvalidBatch(index, batch_id, problem)
    return batch


def _item_id(item: object) -> str | None:
    batch_id = item.get("id") if isinstance(item, dict) else None
    return batch_id if type(batch_id) is str else None


def unstructure_batch(batch: AnyBatch) -> dict[str, Any]:
    """The batch as a JSON-ready dict with the API's field names and values."""
    result: dict[str, Any] = _detailed.unstructure(batch)
    return result


def _describe(error: Exception, path: str) -> str:
    if isinstance(error, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(error, path=path, format_exception=_format))
    return f"{_format(error, None)} @ {path}"


def _format(error: BaseException, kind: type | None) -> str:
    """Our own type errors say what came; cattrs words the others (a missing field, ...)."""
    if isinstance(error, _WrongKindError):
        return str(error)
    return cattrs.v.format_exception(error, kind)


def _optional_str(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is not None and type(value) is not str:
        _fail(f"{key!r} is a JSON {_json_kind(value)}, expected a string or null")
    return value


def _json_kind(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _fail(message: str) -> NoReturn:
    # The message says everything; what was being handled when it was found is internal.
    raise PayloadError(message) from None
