"""MkDocs hook: a public name without a docstring fails `mkdocs build --strict`.

mkdocstrings renders an undocumented name as a bare signature and says nothing;
this hook logs a WARNING for each one, which `--strict` turns into a failure.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import griffe

PUBLIC_MODULES: Final = ("aiobatches", "aiobatches.testing")
"""The modules whose `__all__` is the public API."""

# Under "mkdocs.", so that MkDocs counts these warnings for `--strict`.
log: Final = logging.getLogger("mkdocs.hooks.docstrings")


def undocumented(module: griffe.Module) -> list[str]:
    """Paths of the module's exported names, and of their classes' public methods and
    properties, that have no docstring."""
    missing: list[str] = []
    for name in sorted(str(export) for export in module.exports or ()):
        obj = module[name]
        if not obj.docstring:
            missing.append(f"{module.path}.{name}")
        if obj.is_class:
            missing.extend(
                f"{module.path}.{name}.{member.name}"
                for member in obj.members.values()
                if not member.name.startswith("_")
                and (member.is_function or "property" in member.labels)
                and not member.docstring
            )
    return missing


def on_pre_build(config: Any) -> None:
    """Warn about every public name without a docstring."""
    for path in PUBLIC_MODULES:
        module = griffe.load(path)
        assert isinstance(module, griffe.Module)
        for name in undocumented(module):
            log.warning("%s has no docstring", name)
