"""Structure functions generated once per model class, for the hot path.

A generated function reads each required key by subscript and each optional
one with `dict.get`, so an absent key costs what a present one does and a
`null` means the field's default, as an absent key does. Every value must be
of exactly its declared type, save two shapes Azure OpenAI's published spec
has: a lone object where a list of objects belongs (a list of one), and a
string of digits in an `int` field marked `NUMERIC_STRING`. Nested models
are inlined into the same function. It fills each frozen instance through a
mutable twin class with identical slots and then sets `__class__`, because
attrs' frozen `__init__` (one `object.__setattr__` per field) would cost
about as much as all the rest. A value of any other shape raises `Unusual`,
and the caller takes the detailed cattrs path, which builds the value anyway
or explains what is wrong. A class whose `__init__` does more than store its
fields (validators, converters, `__attrs_post_init__`, a cached hash, ...)
is refused with `Unsupported`: the twin would skip that work, so cattrs
keeps it.
"""

from __future__ import annotations

import builtins
import datetime
import enum
import functools
import itertools
import keyword
import linecache
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Final

import attrs

from ._models import NUMERIC_STRING

Structure = Callable[[Any], Any]


class Unusual(Exception):  # noqa: N818 - a signal to take the detailed path, not an error
    """The value does not have the common shape; the detailed path must decide."""


class Unsupported(TypeError):  # noqa: N818 - a refusal to generate, not a failure of input
    """The class (or one nested in it) cannot be built faithfully by generated code."""


@functools.cache
def structure_function(cls: type) -> Structure:
    """The generated fast structure function for an attrs model class (built once).

    Raises `Unsupported` for a class it cannot build exactly as its `__init__` would.
    """
    source = _Source()
    body = source.build(cls, "item", "result", "")
    # Named after the class, so that a traceback says which function it passed through.
    name = "structure_" + _identifier(cls.__name__)
    lines = [
        f"def {name}(item):",
        "    try:",
        *(f"        {line}" for line in body),
        # A non-dict where an object belongs fails its first subscript (TypeError);
        # a missing required key is a KeyError.
        "    except (KeyError, TypeError):",
        "        raise Unusual from None",
        "    return result",
    ]
    text = "\n".join(lines) + "\n"
    # Registered like cattrs' generated code, so that tracebacks and debuggers show it
    # and say which class of which module it builds (an mtime of None keeps
    # `linecache.checkcache` from dropping it).
    filename = _unique_filename(
        f"<aiobatches generated structure {cls.__module__}.{cls.__qualname__}>"
    )
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    namespace = {**source.namespace, "Unusual": Unusual}
    exec(compile(text, filename, "exec"), namespace)  # noqa: S102 - our own source, built once
    structure: Structure = namespace[name]
    return structure


def _identifier(text: str) -> str:
    return "".join(char if char.isalnum() else "_" for char in text)


def _unique_filename(name: str) -> str:
    """`name`, numbered if a class of the same name already took it."""
    filename, number = name, 0
    while filename in linecache.cache:
        number += 1
        filename = f"{name[:-1]}-{number}>"
    return filename


def _refuse_unfaithful(cls: type) -> None:
    """Raise `Unsupported` if building `cls` without its `__init__` would skip some of its work."""
    name = cls.__qualname__
    if not attrs.has(cls):
        raise Unsupported(f"{name} is not an attrs class")
    for field in attrs.fields(cls):
        if field.validator is not None:
            raise Unsupported(f"{name}.{field.name} has a validator")
        if field.converter is not None:
            raise Unsupported(f"{name}.{field.name} has a converter")
        if not field.init:
            raise Unsupported(f"{name}.{field.name} is set outside __init__'s arguments")
    for hook in ("__attrs_pre_init__", "__attrs_post_init__"):
        if hasattr(cls, hook):
            raise Unsupported(f"{name} has {hook}")
    if "__attrs_init__" in vars(cls):  # attrs adds it when the class writes its own __init__
        raise Unsupported(f"{name} has its own __init__")
    if "__slots__" not in vars(cls):
        raise Unsupported(f"{name} is not slotted")
    # A slot that holds no field (attrs' cached hash) is state that `__init__` sets up.
    slots = {slot for kind in cls.__mro__ for slot in vars(kind).get("__slots__", ())}
    if extra := slots - {field.name for field in attrs.fields(cls)} - {"__weakref__"}:
        raise Unsupported(f"{name} has state beyond its fields: {', '.join(sorted(extra))}")


# Names the generated code uses for itself, which no field's variable may take.
_RESERVED = frozenset({"item", "result", "Unusual", *dir(builtins)})


class _Source:
    """Accumulates generated statements and the names they refer to, each named after
    what it holds: a field's value after its path (`request_counts_total`), a global
    after its role and class (`_type_BatchRequestCounts`)."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {}
        self._locals: set[str] = set()

    def name(self, role: str, value: Any) -> str:
        """A global name for `value` in the generated module, e.g. `_type_Batch`."""
        if isinstance(value, type) and value.__name__ in ("str", "int", "bool", "float"):
            return value.__name__  # the builtin itself reads best
        stem = "_" + _identifier(role)
        name, number = stem, 1
        while self.namespace.get(name, value) is not value:
            number += 1
            name = f"{stem}_{number}"
        self.namespace[name] = value
        return name

    def local(self, path: str) -> str:
        """A fresh variable named after the field path it holds, e.g. `usage_input_tokens`."""
        stem = _identifier(path)
        if keyword.iskeyword(stem) or stem in _RESERVED:
            stem += "_"
        name, number = stem, 1
        while name in self._locals:
            number += 1
            name = f"{stem}_{number}"
        self._locals.add(name)
        return name

    def build(self, cls: type, source: str, target: str, path: str) -> list[str]:
        """Statements that read dict `source`, check it, and bind a new `cls` to `target`;
        `path` names the fields' variables (empty at the top)."""
        _refuse_unfaithful(cls)
        hints = typing.get_type_hints(cls)
        fields = attrs.fields(cls)
        values = [self.local(f"{path}_{field.name}" if path else field.name) for field in fields]
        lines = []
        if fields[0].default is not attrs.NOTHING:
            # The first read must fail on a non-dict: a subscript does, `.get` may not.
            lines.append(f"if type({source}) is not dict: raise Unusual")
        # All reads first, then all checks: measured faster than alternating them.
        reads, checks = zip(
            *(
                self._field(field, hints[field.name], source, value)
                for field, value in zip(fields, values, strict=True)
            ),
            strict=True,
        )
        lines += [*reads, *itertools.chain.from_iterable(checks)]
        twin = _twin(cls)
        cls_name = self.name(f"type_{cls.__name__}", cls)
        if twin is None:
            arguments = (
                f"{field.alias}={value}" for field, value in zip(fields, values, strict=True)
            )
            return [*lines, f"{target} = {cls_name}({', '.join(arguments)})"]
        # Calling the twin costs less than `object.__new__(twin)`.
        lines.append(f"{target} = {self.name(f'twin_{cls.__name__}', twin)}()")
        lines += [
            f"{target}.{field.name} = {value}" for field, value in zip(fields, values, strict=True)
        ]
        lines.append(f"{target}.__class__ = {cls_name}")
        return lines

    def _field(
        self, field: attrs.Attribute[Any], hint: Any, source: str, value: str
    ) -> tuple[str, list[str]]:
        """The statement that reads one field from `source` into `value`, and those that
        check and convert it.

        Subscripts and `.get` with a constant key beat `operator.itemgetter`
        and `map(source.get, names)` here (benchmarks/README.md has the numbers).
        """
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        nullable = type(None) in options
        lines = self._convert(
            tuple(option for option in options if option is not type(None)),
            value,
            digits=bool(field.metadata.get(NUMERIC_STRING)),
        )
        default = field.default
        if default is attrs.NOTHING:
            # A required key: absent is a KeyError, null fails its type check.
            read = f"{value} = {source}[{field.name!r}]"
            if nullable:
                return read, [f"if {value} is not None:", *_indent(lines)]
            return read, lines
        read = f"{value} = {source}.get({field.name!r})"
        if default is None:
            return read, [f"if {value} is not None:", *_indent(lines)]
        # attrs' stubs type `Factory` as a function returning the value, not as a class.
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            if default.takes_self:
                raise Unsupported(f"{field.name}'s default depends on the instance")
            fill = f"{self.name(f'factory_{value}', default.factory)}()"
        else:
            fill = self.name(f"default_{value}", default)
        return read, [f"if {value} is None:", f"    {value} = {fill}", "else:", *_indent(lines)]

    def _convert(  # noqa: PLR0911 - one return per kind of field
        self, options: tuple[Any, ...], value: str, *, digits: bool = False
    ) -> list[str]:
        """Statements that check a non-null `value` (and convert it in place); with
        `digits`, an `int` may also come as a string of digits."""
        option = options[0]
        origin = typing.get_origin(option) or option
        if len(options) == 2 and isinstance(origin, type) and issubclass(origin, enum.Enum):
            members = self.name(
                f"members_{origin.__name__}", {member.value: member for member in origin}.get
            )
            value_type = type(next(iter(origin)).value)
            kind = self.name(f"type_{value_type.__name__}", value_type)
            return [
                f"if type({value}) is not {kind}: raise Unusual",
                f"{value} = {members}({value}, {value})",
            ]
        if len(options) != 1:
            names = (getattr(option, "__name__", repr(option)) for option in options)
            raise Unsupported(f"no fast structuring for {' | '.join(names)}")
        if attrs.has(origin):
            return self.build(origin, value, value, value)
        if origin is list:
            (item,) = typing.get_args(option)
            structure = self.name(f"structure_{item.__name__}", structure_function(item))
            # A lone object where the list belongs is a list of one (Azure OpenAI sends
            # `errors.data` so); the common list pays nothing for the check.
            return [
                f"if type({value}) is not list:",
                f"    if type({value}) is not dict: raise Unusual",
                f"    {value} = [{value}]",
                f"{value} = [{structure}(x) for x in {value}]",
            ]
        if origin is dict:  # dict[str, str], checked inline: a call costs more than the loop
            key, item = self.local(f"{value}_key"), self.local(f"{value}_value")
            return [
                f"if type({value}) is not dict: raise Unusual",
                f"for {key}, {item} in {value}.items():",
                f"    if type({key}) is not str or type({item}) is not str: raise Unusual",
            ]
        if digits and origin is int:
            return [
                f"if type({value}) is not int: {value} = {self.name('digits', _digits)}({value})"
            ]
        if origin is datetime.datetime:
            return [f"{value} = {self.name('moment', _moment)}({value})"]
        if origin in (str, int, bool, float):
            return [f"if type({value}) is not {self.name('type', origin)}: raise Unusual"]
        raise Unsupported(f"no fast structuring for {option!r}")


def digits_value(value: object) -> int | None:
    """The int a string of ASCII digits spells, or None for anything else.

    Only `0-9`: `int()` would also take signs, spaces, underscores and other
    scripts' digits, and a string of more digits than it reads is refused too.
    """
    if type(value) is not str or not (value.isascii() and value.isdigit()):
        return None
    try:
        return int(value)
    except ValueError:  # beyond `sys.get_int_max_str_digits()`
        return None


_RFC3339: Final = re.compile(
    r"(\d{4}-\d\d-\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,32}))?([Zz]|[+-]\d\d:\d\d)",
    re.ASCII,
)
"""RFC 3339's `date-time` (section 5.6): a date, `T` (or `t`, or a space as its note
allows), a time with seconds and any fraction (read to the microsecond; 32 digits at
most, to bound the work), and `Z` or an offset in hours and minutes."""


_COMMON: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]\d(?:\.\d{1,6})?Z", re.ASCII)
"""The form Anthropic sends (`2024-08-20T18:37:24.100435Z`), which Python reads as it is."""


def moment_value(value: object) -> datetime.datetime | None:
    """The aware datetime an RFC 3339 date-time string spells (Anthropic's timestamps),
    or None for anything else: no zone, a date alone, an ISO form RFC 3339 does not have
    (week dates, offsets without a colon or with seconds, a comma before the fraction).
    A leap second (`23:59:60Z`) is read as the last microsecond before the next second."""
    if type(value) is not str:
        return None
    if _COMMON.fullmatch(value) is not None:  # the common form, at a quarter of the cost
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:  # no such day or hour
            return None
    if (match := _RFC3339.fullmatch(value)) is None:
        return None
    date, hour, minute, second, fraction, zone = match.groups()
    leap = second == "60"
    micro = (fraction or "").ljust(6, "0")[:6]
    text = f"{date}T{hour}:{minute}:{'59' if leap else second}.{micro}{zone.upper()}"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:  # no such day or hour, or an offset of 24 hours or more
        return None
    return moment.replace(microsecond=999_999) if leap else moment


def _moment(value: object) -> datetime.datetime:
    moment = moment_value(value)
    if moment is None:
        raise Unusual
    return moment


def _digits(value: object) -> int:
    number = digits_value(value)
    if number is None:
        raise Unusual
    return number


def _indent(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]


def _twin(cls: type) -> type | None:
    """A plain class with `cls`'s slots, if this interpreter lets an instance become a `cls`."""
    slots = cls.__slots__  # type: ignore[attr-defined]
    twin = type(f"_{cls.__name__}Twin", (), {"__slots__": slots})
    probe: Any = object.__new__(twin)
    try:
        probe.__class__ = cls
    except TypeError:  # e.g. a `__weakref__` slot, which CPython lays out apart
        return None
    return twin
