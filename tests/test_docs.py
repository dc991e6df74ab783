"""The documentation site: every Python example in docs/ runs as written, and the build's
docstring check flags an undocumented public name."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Final, NamedTuple

import griffe
import pytest
from _helpers import API_KEY, AZURE_VERSION, MakeServer

from aiobatches.testing import ManualClock

DOCS: Final = Path(__file__).parent.parent / "docs"
PYTHON_BLOCK: Final = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
HOUR: Final = 3_600.0
"""How far the docs' server clock jumps at each sleep, so waits on day-long batches end in
a few dozen polls."""


class Example(NamedTuple):
    """One ```python block of a docs page."""

    page: str
    line: int
    """The line of the block's first line of code, counted from 1."""
    code: str

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def examples() -> list[Example]:
    """Every ```python block of docs/*.md, in page and line order."""
    found = []
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text()
        for match in PYTHON_BLOCK.finditer(text):
            line = text.count("\n", 0, match.start(1)) + 1
            found.append(Example(str(path.relative_to(DOCS)), line, match.group(1)))
    return found


EXAMPLES: Final = examples()


def test_the_docs_have_python_examples() -> None:
    """The pages users read most carry runnable examples, so the harness never runs nothing."""
    pages = {example.page for example in EXAMPLES}
    assert {"index.md", "streaming.md", "awaiting.md", "testing.md", "errors.md"} <= pages


@pytest.mark.parametrize("example", EXAMPLES, ids=str)
async def test_example_runs_as_written(
    example: Example,
    make_server: MakeServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A docs example runs to its end against living fake servers and closes what it opened."""
    clock = ManualClock()
    server = await make_server(count=120, api_key=API_KEY, clock=clock, arrival_every=600)
    azure = await make_server(
        count=60, api_key=API_KEY, azure=True, azure_api_version=AZURE_VERSION
    )
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", azure.url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", API_KEY)
    # Blank lines first, so that a traceback names the page's own line numbers.
    source = "\n" * (example.line - 1) + example.code
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT  # as `python -m asyncio` compiles what it is given
    code = compile(source, str(DOCS / example.page), "exec", flags=flags)
    namespace = {"__name__": "__main__"}
    # aiobatches' polls and retry delays do not wait: each moves the server's clock on instead.
    with clock.driving_sleeps(lambda _: clock.advance(HOUR)):
        if code.co_flags & inspect.CO_COROUTINE:
            await eval(code, namespace)  # noqa: S307 - the docs' own code, run as users run it
        else:  # a whole script: its asyncio.run needs a thread with no running loop
            await asyncio.to_thread(exec, code, namespace)
    # The example closed its clients: the servers see every connection end.
    for _ in range(100):
        if server.open_connections == azure.open_connections == 0:
            break
        await asyncio.sleep(0)
    assert (server.open_connections, azure.open_connections) == (0, 0)


def load_hooks() -> ModuleType:
    """docs/_hooks.py, the MkDocs hook, as a module."""
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SYNTHETIC: Final = '''
"""A module."""

__all__ = ["Documented", "bare", "documented", "Partly"]


def documented():
    """Has one."""


def bare():
    pass


def hidden():
    pass


class Documented:
    """Has one."""

    def method(self):
        """Has one."""

    def _private(self):
        pass


class Partly:
    """Has one, unlike two of its members."""

    def method(self):
        pass

    @property
    def value(self):
        pass

    @property
    def fine(self):
        """Has one."""
'''


def test_the_docstring_check_names_each_undocumented_public_name() -> None:
    """The build's hook names exported functions, classes, methods and properties without a
    docstring, and nothing private or unexported."""
    hooks = load_hooks()
    module = griffe.visit("synthetic", Path("synthetic.py"), SYNTHETIC)
    assert hooks.undocumented(module) == [
        "synthetic.Partly.method",
        "synthetic.Partly.value",
        "synthetic.bare",
    ]


def test_the_docstring_check_passes_the_public_api() -> None:
    """Every public name of aiobatches and aiobatches.testing has a docstring."""
    hooks = load_hooks()
    for path in hooks.PUBLIC_MODULES:
        module = griffe.load(path)
        assert hooks.undocumented(module) == [], path
