"""Structure functions generated once per model class, for the hot path.

A generated function accepts only the usual shape: every key present and
every value of exactly its declared type, nested models inlined into the
same function. It fills each frozen instance through a mutable twin class
with identical slots and then sets `__class__`, because attrs' frozen
`__init__` (one `object.__setattr__` per field) would cost about as much as
all the rest. Anything else raises `Unusual`, and the caller takes the
detailed cattrs path, which builds the value anyway or explains what is wrong.
"""

from __future__ import annotations

import enum
import functools
import itertools
import operator
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import attrs

Structure = Callable[[Any], Any]


class Unusual(Exception):  # noqa: N818 - a signal to take the detailed path, not an error
    """The value does not have the common shape; the detailed path must decide."""


@functools.cache
def structure_function(cls: type) -> Structure:
    """The generated fast structure function for an attrs model class (built once)."""
    source = _Source()
    body = source.build(cls, "item", "result")
    lines = [
        "def structure(item):",
        "    try:",
        *(f"        {line}" for line in body),
        "    except (KeyError, TypeError, IndexError):",
        "        raise Unusual from None",
        "    return result",
    ]
    namespace = {**source.namespace, "Unusual": Unusual}
    exec("\n".join(lines), namespace)  # noqa: S102 - our own generated source, built once
    structure: Structure = namespace["structure"]
    structure.__qualname__ = structure.__name__ = f"structure_{cls.__name__}"
    return structure


class _Source:
    """Accumulates generated statements and the names they refer to."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"_new": object.__new__}
        self._names: Iterator[int] = itertools.count()

    def name(self, value: Any) -> str:
        """A fresh global name bound to `value` in the generated module."""
        name = f"_g{next(self._names)}"
        self.namespace[name] = value
        return name

    def local(self) -> str:
        return f"v{next(self._names)}"

    def build(self, cls: type, source: str, target: str) -> list[str]:
        """Statements that read dict `source`, check it, and bind a new `cls` to `target`."""
        hints = typing.get_type_hints(cls)
        names = [field.name for field in attrs.fields(cls)]
        values = [self.local() for _ in names]
        getter = self.name(operator.itemgetter(*names))
        if len(names) == 1:
            lines = [f"{values[0]} = {getter}({source})"]
        else:
            lines = [f"{', '.join(values)}, = {getter}({source})"]
        converted = []
        for name, value in zip(names, values, strict=True):
            lines += self._field(hints[name], value)
            converted.append(value)
        twin = _twin(cls)
        cls_name = self.name(cls)
        if twin is None:
            return [*lines, f"{target} = {cls_name}({', '.join(converted)})"]
        lines.append(f"{target} = _new({self.name(twin)})")
        lines += [
            f"{target}.{name} = {value}" for name, value in zip(names, converted, strict=True)
        ]
        lines.append(f"{target}.__class__ = {cls_name}")
        return lines

    def _field(self, hint: Any, value: str) -> list[str]:
        """Statements that check `value` (and convert it in place) for a field of type `hint`."""
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        optional = type(None) in options
        options = tuple(option for option in options if option is not type(None))
        lines = self._convert(options, value)
        if optional:
            return [f"if {value} is not None:", *(f"    {line}" for line in lines)]
        return lines

    def _convert(self, options: tuple[Any, ...], value: str) -> list[str]:
        option = options[0]
        origin = typing.get_origin(option) or option
        if len(options) == 2 and isinstance(origin, type) and issubclass(origin, enum.Enum):
            members = self.name({member.value: member for member in origin}.get)
            kind = self.name(type(next(iter(origin)).value))
            return [
                f"if type({value}) is not {kind}: raise Unusual",
                f"{value} = {members}({value}, {value})",
            ]
        if len(options) != 1:  # pragma: no cover - guards a model change without fast support
            raise TypeError(f"no fast structuring for {options!r}")
        if attrs.has(origin):
            return self.build(origin, value, value)
        if origin is list:
            (item,) = typing.get_args(option)
            structure = self.name(structure_function(item))
            return [
                f"if type({value}) is not list: raise Unusual",
                f"{value} = [{structure}(x) for x in {value}]",
            ]
        if origin is dict:  # dict[str, str], checked inline: a call costs more than the loop
            key, item = self.local(), self.local()
            return [
                f"if type({value}) is not dict: raise Unusual",
                f"for {key}, {item} in {value}.items():",
                f"    if type({key}) is not str or type({item}) is not str: raise Unusual",
            ]
        if origin in (str, int, bool, float):
            return [f"if type({value}) is not {self.name(origin)}: raise Unusual"]
        raise TypeError(f"no fast structuring for {option!r}")  # pragma: no cover


def _twin(cls: type) -> type | None:
    """A plain class with `cls`'s slots, if this interpreter lets an instance become a `cls`."""
    slots = cls.__slots__  # type: ignore[attr-defined]
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": slots})
    probe: Any = object.__new__(twin)
    try:
        probe.__class__ = cls
    except TypeError:  # pragma: no cover - e.g. an interpreter with other layout rules
        return None
    return twin
