"""What the distribution declares: its license, its one version, the Pythons it supports."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import aiobatches

ROOT = Path(__file__).parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_file_says_what_the_metadata_declares() -> None:
    """pyproject declares MIT, LICENSE holds its text, and the installed metadata carries both."""
    assert PROJECT["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 aiobatches developers" in text
    metadata = importlib.metadata.metadata("aiobatches")
    assert metadata["License-Expression"] == "MIT"
    assert metadata.get_all("License-File") == ["LICENSE"]


def test_version_is_written_in_one_place() -> None:
    """The version lives in pyproject alone: read from installed metadata, spelled in no module."""
    version = PROJECT["version"]
    assert aiobatches.__version__ == importlib.metadata.version("aiobatches") == version
    spelled = re.compile(rf"(?<![\w.]){re.escape(version)}(?![\w.])")
    assert [
        path.name for path in (ROOT / "aiobatches").glob("*.py") if spelled.search(path.read_text())
    ] == []


def test_classifiers_start_where_requires_python_does() -> None:
    """The Python classifiers (the versions nox tests) begin at requires-python's floor."""
    versions = [
        classifier.removeprefix("Programming Language :: Python :: ")
        for classifier in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    ]
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))))
    assert PROJECT["requires-python"] == f">={versions[0]}"
