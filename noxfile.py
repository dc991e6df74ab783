"""The test suite on every supported Python this machine has: `nox` (or `nox -s tests`).

The supported versions are pyproject.toml's classifiers, so the two cannot
drift apart. Interpreters are found through pyenv when the session starts
(the newest installed patch release of each version); a version the machine
lacks is skipped, never downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import nox

PYPROJECT = nox.project.load_toml("pyproject.toml")
SUPPORTED = nox.project.python_versions(PYPROJECT)

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = False  # skip a version this machine lacks
nox.options.download_python = "never"


def pyenv_interpreter_dirs(versions: Iterable[str]) -> Iterator[str]:
    """The `bin` folder of the newest pyenv installation of each version, where there is one."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return
    listed = subprocess.run(
        [pyenv, "versions", "--bare"], capture_output=True, text=True, check=False
    ).stdout.split()
    for version in versions:
        releases = [name for name in listed if re.fullmatch(rf"{re.escape(version)}\.\d+", name)]
        if not releases:
            continue
        newest = max(releases, key=lambda name: int(name.rsplit(".", 1)[1]))
        prefix = subprocess.run(
            [pyenv, "prefix", newest], capture_output=True, text=True, check=False
        ).stdout.strip()
        if prefix:
            yield str(Path(prefix) / "bin")


# nox finds `python3.12` and the like on PATH; pyenv's own folders go first, ahead of its
# shims, which answer only for the versions a user has made active.
os.environ["PATH"] = os.pathsep.join([*pyenv_interpreter_dirs(SUPPORTED), os.environ["PATH"]])


@nox.session(python=SUPPORTED)
def tests(session: nox.Session) -> None:
    """The suite as the README runs it (branch coverage included), on one Python version."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *(session.posargs or ["-q", "-p", "no:cacheprovider"]))
