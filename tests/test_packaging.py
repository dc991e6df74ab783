"""What the distribution declares (its license, its one version, the Pythons it supports, its
URLs), and that the README says the same and runs the suite as CI does."""

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


README = (ROOT / "README.md").read_text()


def fresh_machine_commands() -> list[str]:
    """The console lines of the README's "On a fresh machine" section, in order."""
    section = README.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```console\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1).splitlines()


def test_the_readme_runs_the_suite_as_ci_does() -> None:
    """The README's fresh-machine lines make a virtual environment first and end with the very
    command .ci/run ends with, so what a newcomer runs is what CI checks."""
    lines = fresh_machine_commands()
    assert lines[0].startswith("python3 -m venv .venv && . .venv/bin/activate")
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert lines[-1].rpartition(" && ")[2] == ci[-1] == "python -m pytest"
    assert any(line.endswith("aiobatches list --demo") for line in lines)


def test_the_readme_says_what_the_metadata_declares() -> None:
    """The README names the development status, the supported Pythons and the license that
    pyproject declares, and links the repository and the issue tracker of its URLs."""
    status = next(
        classifier.rpartition(" - ")[2].lower()
        for classifier in PROJECT["classifiers"]
        if classifier.startswith("Development Status ::")
    )
    versions = [
        classifier.removeprefix("Programming Language :: Python :: ")
        for classifier in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    ]
    assert f"**Status:** {status}" in README
    assert f"**Python:** {', '.join(versions[:-1])} and {versions[-1]}." in README
    assert f"**License:** [{PROJECT['license']}](LICENSE)" in README
    urls = PROJECT["urls"]
    assert set(urls) == {"Homepage", "Repository", "Issues", "Documentation", "Changelog"}
    assert all(url.startswith(urls["Repository"]) for url in urls.values())
    assert f"({urls['Repository']})" in README
    assert f"({urls['Issues']})" in README
