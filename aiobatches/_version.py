"""The installed distribution's version, read once from its metadata."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version


@functools.cache
def version() -> str:
    """The version of the installed `aiobatches` distribution (`0+unknown` if not installed)."""
    try:
        return _distribution_version("aiobatches")
    except PackageNotFoundError:  # pragma: no cover - only when run from a bare source tree
        return "0+unknown"
