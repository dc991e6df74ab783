"""The front door: `__all__`, the version, and documentation of every public name."""

from __future__ import annotations

import importlib.metadata
import inspect
import subprocess
import sys
import types

import pytest

import aiobatches
import aiobatches.testing


def _public_names(module: types.ModuleType) -> set[str]:
    """Names without a leading underscore bound to something aiobatches itself defines
    (a constant, which carries no module, by its UPPER_CASE name)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and (getattr(value, "__module__", "").startswith("aiobatches") or name.isupper())
    }


@pytest.mark.parametrize("module", [aiobatches, aiobatches.testing])
def test_all_lists_exactly_the_public_names_sorted(module: types.ModuleType) -> None:
    """`__all__` is sorted and names every public object of the module, and nothing else."""
    assert module.__all__ == sorted(module.__all__)
    assert set(module.__all__) == _public_names(module)


@pytest.mark.parametrize("name", aiobatches.__all__ + aiobatches.testing.__all__)
def test_every_public_object_is_documented(name: str) -> None:
    """Each public name carries a docstring of its own."""
    obj = getattr(aiobatches, name, None) or getattr(aiobatches.testing, name)
    assert inspect.getdoc(obj)


def test_version_comes_from_the_installed_metadata() -> None:
    """`aiobatches.__version__` is the installed distribution's version."""
    assert aiobatches.__version__ == importlib.metadata.version("aiobatches")
    with pytest.raises(AttributeError):
        _ = aiobatches.no_such_name  # the module's __getattr__ knows only __version__


def test_error_tree_matches_the_contract() -> None:
    """The error classes nest as API.md draws them."""
    parents = {
        aiobatches.InvalidWebhookError: aiobatches.AIOBatchesError,
        aiobatches.APIError: aiobatches.AIOBatchesError,
        aiobatches.APIConnectionError: aiobatches.APIError,
        aiobatches.APITimeoutError: aiobatches.APIConnectionError,
        aiobatches.APIStatusError: aiobatches.APIError,
        aiobatches.APIResponseValidationError: aiobatches.APIError,
        aiobatches.PaginationError: aiobatches.APIResponseValidationError,
    }
    for status_error in (
        aiobatches.BadRequestError,
        aiobatches.AuthenticationError,
        aiobatches.PermissionDeniedError,
        aiobatches.NotFoundError,
        aiobatches.ConflictError,
        aiobatches.UnprocessableEntityError,
        aiobatches.RateLimitError,
        aiobatches.InternalServerError,
    ):
        parents[status_error] = aiobatches.APIStatusError
    for child, parent in parents.items():
        assert child.__bases__ == (parent,), child


def test_importing_aiobatches_does_not_load_the_server_or_cli() -> None:
    """The fake server (aiohttp.web) and the CLI load only when asked for."""
    code = (
        "import sys, aiobatches;"
        "print(sorted(m for m in ('aiobatches.testing', 'aiobatches._cli', 'aiohttp.web')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
