"""MkDocs hook: a public name without a docstring fails `mkdocs build --strict`.

mkdocstrings renders an undocumented function or class as a bare signature, and leaves
an undocumented attribute out altogether (`show_if_no_docstring: false`); this hook logs
a WARNING for each one, which `--strict` turns into a failure.

What it checks: every exported name, and, in each exported class and in each public class
nested in one, every public method, property, attribute (model fields, enum members,
exception context such as `APIStatusError.status_code`) and nested class. A docstring
counts only if its text is not blank. An attribute also counts as documented when its
class's docstring names it in an `Attributes:` section, which mkdocstrings renders as a
list; a mention in the class's prose does not count, since it renders no entry.

It also holds the griffe extensions that mkdocs.yml gives mkdocstrings, each hiding a name
that lives in a private module a reader cannot look up: `ConstantValues` shows a default
that names a constant (`timeout=DEFAULT_TIMEOUT`) as the constant's value (`timeout=60.0`),
and `PublicBases` leaves a class's private base classes out of its "Bases:" line.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from typing import Any, Final

import griffe

PUBLIC_MODULES: Final = ("aiobatches", "aiobatches.testing")
"""The modules whose `__all__` is the public API."""

MAX_NAME_CHAIN: Final = 10
"""How many constants naming constants a default is followed through before it is left as is."""

# Under "mkdocs.", so that MkDocs counts these warnings for `--strict`.
log: Final = logging.getLogger("mkdocs.hooks.docstrings")


def has_text(obj: griffe.Object | griffe.Alias) -> bool:
    """Whether the object has a docstring with something in it besides whitespace."""
    return obj.docstring is not None and obj.docstring.value.strip() != ""


def listed_attributes(cls: griffe.Object | griffe.Alias) -> set[str]:
    """The names that the class docstring's `Attributes:` section describes."""
    if cls.docstring is None:
        return set()
    return {
        attribute.name
        for section in cls.docstring.parse("google")
        if isinstance(section, griffe.DocstringSectionAttributes)
        for attribute in section.value
        if attribute.description.strip()
    }


def undocumented_members(cls: griffe.Object | griffe.Alias, path: str) -> list[str]:
    """Paths of the class's public methods, properties, attributes and nested classes, and
    of their own members, that have no docstring."""
    missing: list[str] = []
    listed = listed_attributes(cls)
    for member in cls.members.values():
        if member.name.startswith("_"):
            continue
        member_path = f"{path}.{member.name}"
        if member.is_attribute:
            if not has_text(member) and member.name not in listed:
                missing.append(member_path)
        elif member.is_function:
            if not has_text(member):
                missing.append(member_path)
        elif member.is_class:
            if not has_text(member):
                missing.append(member_path)
            missing.extend(undocumented_members(member, member_path))
    return missing


def undocumented(module: griffe.Module) -> list[str]:
    """Paths of the module's exported names, and of their classes' public members at any
    depth, that have no docstring, in sorted order."""
    missing: list[str] = []
    for name in sorted(str(export) for export in module.exports or ()):
        obj = module[name]
        path = f"{module.path}.{name}"
        if not has_text(obj):
            missing.append(path)
        if obj.is_class:
            missing.extend(undocumented_members(obj, path))
    return sorted(missing)


def on_pre_build(config: Any) -> None:
    """Warn about every public name without a docstring."""
    for path in PUBLIC_MODULES:
        module = griffe.load(path)
        assert isinstance(module, griffe.Module)
        for name in undocumented(module):
            log.warning("%s has no docstring", name)


def defined_objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    """The modules, classes and functions defined in `obj`, at any depth; imports (aliases)
    are visited where they are defined, not where they are imported."""
    for member in obj.members.values():
        if isinstance(member, griffe.Alias):
            continue
        yield member
        if member.is_module or member.is_class:
            yield from defined_objects(member)


def constant_value(
    default: str | griffe.Expr | None, modules: griffe.ModulesCollection
) -> str | griffe.Expr | None:
    """The value of the constant that `default` names, when that value is a literal (`60.0`,
    `100`, `"https://..."`, also through a constant naming another); else `default` itself."""
    value = default
    for _ in range(MAX_NAME_CHAIN):
        if not isinstance(value, griffe.ExprName | griffe.ExprAttribute):
            break
        try:
            target = modules[value.canonical_path]
            if isinstance(target, griffe.Alias):
                target = target.final_target
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            return default  # a name outside the loaded packages (`math.inf`) stays as written
        if not target.is_attribute or target.value is None:
            return default
        value = target.value
    try:
        ast.literal_eval(str(value))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return default  # an expression (`frozenset(...)`, `16 * MIB`): its name says more
    return value


class ConstantValues(griffe.Extension):
    """Show a parameter default that names a constant as the constant's value."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Replace such defaults once the whole package is loaded, so that a constant from any
        of its modules resolves."""
        for obj in defined_objects(pkg):
            if isinstance(obj, griffe.Function):
                for parameter in obj.parameters:
                    parameter.default = constant_value(parameter.default, loader.modules_collection)


def exported_paths(package: griffe.Module) -> set[str]:
    """The paths of the objects that the package and its public submodules export, where
    they are defined (`aiobatches._client.Client` for `aiobatches.Client`)."""
    modules = [package, *(m for m in package.modules.values() if not m.name.startswith("_"))]
    paths: set[str] = set()
    for module in modules:
        for name in module.exports or ():
            member = module[str(name)]
            paths.add(member.final_target.path if isinstance(member, griffe.Alias) else member.path)
    return paths


class PublicBases(griffe.Extension):
    """Leave out of each class's bases those defined in the package that it does not export,
    such as a private mixin; bases from elsewhere (`str`, `enum.Enum`) stay."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Filter the bases once the whole package is loaded, so that its exports resolve."""
        exported = exported_paths(pkg)

        def shown(base: str | griffe.Expr) -> bool:
            path = base.canonical_path if isinstance(base, griffe.Expr) else base
            return not path.startswith(f"{pkg.name}.") or path in exported

        for obj in defined_objects(pkg):
            if isinstance(obj, griffe.Class):
                # What a hidden base gives the class stays documented, as the class's own.
                inherited = dict(obj.inherited_members)
                obj.bases = [base for base in obj.bases if shown(base)]
                for name, member in inherited.items():
                    if name not in obj.all_members:
                        obj.set_member(name, griffe.Alias(name, member.final_target, parent=obj))
