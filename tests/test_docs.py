"""The documentation site: every Python example in docs/ runs as written, the build's
docstring check flags an undocumented public name, and the API reference shows defaults as
values and no constructor that users never call."""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Final, NamedTuple

import griffe
import pytest
from _helpers import API_KEY, AZURE_VERSION, MakeServer

from aiobatches.testing import ManualClock

DOCS: Final = Path(__file__).parent.parent / "docs"
PYTHON_BLOCK: Final = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
RUN_FENCE: Final = "```python"
"""The one opening line of a Python block that `examples()` finds and the harness runs."""
FENCE: Final = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
"""A line that opens or closes a fenced block, at any indent, as Superfences reads one."""
PYTHON_LANGUAGE: Final = re.compile(r"py(thon)?3?|pyi|pycon", re.IGNORECASE)
"""The languages that Superfences highlights as Python code or a Python session."""
WEBHOOK_SECRET: Final = "whsec_ZG9jcyBzaWduaW5nIHNlY3JldCwgbm90IGEgcmVhbCBvbmU="
"""The signing secret the docs' examples find in OPENAI_WEBHOOK_SECRET, as a user's app does."""
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


def fence_language(info: str) -> str:
    """The language of a fence's info string: `python title="x.py"` and `{ .python }` both
    give `python`."""
    info = info.strip()
    if info.startswith("{"):
        found = re.search(r"\.([\w+-]+)", info)
        return found.group(1) if found else ""
    found = re.match(r"[\w+-]*", info)
    return found.group() if found else ""


def unrun_python_fences(markdown: str) -> list[int]:
    """The lines, counted from 1, that open a Python block in any form but the one the harness
    runs; fences inside another block are its text, not blocks."""
    unrun: list[int] = []
    opened: str | None = None  # the fence of the block we are in, if any
    for number, line in enumerate(markdown.splitlines(), start=1):
        fence = FENCE.match(line)
        if opened is not None:
            closes = (
                fence is not None
                and fence["fence"][0] == opened[0]
                and len(fence["fence"]) >= len(opened)
                and not fence["info"].strip()
            )
            if closes:
                opened = None
            continue
        if fence is None:
            continue
        opened = fence["fence"]
        if PYTHON_LANGUAGE.fullmatch(fence_language(fence["info"])) and line != RUN_FENCE:
            unrun.append(number)
    return unrun


def test_the_docs_have_python_examples() -> None:
    """The pages users read most carry runnable examples, so the harness never runs nothing."""
    pages = {example.page for example in EXAMPLES}
    assert {"index.md", "streaming.md", "awaiting.md", "testing.md", "errors.md"} <= pages


def test_every_python_block_of_the_docs_is_one_the_harness_runs() -> None:
    """No docs page writes Python in a fence the harness skips (indented, titled, `py`,
    `~~~`, ...), where a broken example would pass unseen."""
    unrun = [
        f"{path.relative_to(DOCS)}:{number}: {path.read_text().splitlines()[number - 1]}"
        for path in sorted(DOCS.rglob("*.md"))
        for number in unrun_python_fences(path.read_text())
    ]
    assert unrun == [], f"write these as a column-0 {RUN_FENCE} block"


FENCE_FORMS: Final = """\
```python
runs
```

```python title="example.py"
```

``` python
```

```py
```

```Python
```

```pycon
>>> 1
```

~~~python
~~~

````python
````

```{ .python .numbered }
```

- In a list:

    ```python
    ```

!!! note

    ```python
    ```

````markdown
```python title="shown as text, not a block"
```
````

```console
$ python -m aiobatches
```

```text
```
"""


def test_the_fence_check_names_each_python_block_the_harness_skips() -> None:
    """Every skipped form of a Python fence is named by its line; the one form the harness
    runs, fences shown inside another block, and other languages are not."""
    assert unrun_python_fences(FENCE_FORMS) == [5, 8, 11, 14, 17, 21, 24, 27, 32, 37]
    assert [block.group(1) for block in PYTHON_BLOCK.finditer(FENCE_FORMS)] == ["runs\n"]


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
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)  # the same batches, as Message Batches
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
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

__all__ = ["Documented", "bare", "documented", "Partly", "empty", "Blank", "Outer"]


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


def empty():
    """"""


class Blank:
    """   """


class Outer:
    """Has one, and its `Attributes:` section describes `listed`.

    Attributes:
        listed: Described here, so it needs no docstring of its own.
    """

    listed: int
    own: int
    """Has one."""
    bare_field: int
    blank_field: int
    """ """

    class Inner:
        """Has one, unlike its members."""

        def method(self):
            pass

        @property
        def value(self):
            pass

        field: int

        class Deepest:
            pass

    class Hollow:
        """  """

    class _Private:
        def method(self):
            pass
'''


def test_the_docstring_check_names_each_undocumented_public_name() -> None:
    """The build's hook names exported functions and classes, and their classes' methods,
    properties, attributes and nested classes at any depth, whose docstring is missing, empty
    or blank, and nothing private or unexported."""
    hooks = load_hooks()
    module = griffe.visit("synthetic", Path("synthetic.py"), SYNTHETIC)
    assert hooks.undocumented(module) == [
        "synthetic.Blank",
        "synthetic.Outer.Hollow",
        "synthetic.Outer.Inner.Deepest",
        "synthetic.Outer.Inner.field",
        "synthetic.Outer.Inner.method",
        "synthetic.Outer.Inner.value",
        "synthetic.Outer.bare_field",
        "synthetic.Outer.blank_field",
        "synthetic.Partly.method",
        "synthetic.Partly.value",
        "synthetic.bare",
        "synthetic.empty",
    ]


def test_the_docstring_check_passes_the_public_api() -> None:
    """Every public name of aiobatches and aiobatches.testing has a docstring."""
    hooks = load_hooks()
    for path in hooks.PUBLIC_MODULES:
        module = griffe.load(path)
        assert hooks.undocumented(module) == [], path


CONSTANTS: Final = {
    "__init__.py": """
from pkg._client import connect

__all__ = ["connect"]
""",
    "_config.py": """
import math

TIMEOUT = 60.0
LIMIT = 100
BASE_URL = "https://api.example.test/v1"
RETRIES = LIMIT_ALIAS = 2
CHAINED = LIMIT
MIB = 1024 * 1024
STATUSES = frozenset({"completed", "failed"})
FOREVER = math.inf
""",
    "_client.py": '''
import math

from pkg import _config
from pkg._config import BASE_URL, CHAINED, FOREVER, LIMIT, MIB, STATUSES, TIMEOUT


def connect(
    url=BASE_URL,
    timeout=TIMEOUT,
    limit=LIMIT,
    retries=_config.RETRIES,
    chained=CHAINED,
    size=MIB,
    statuses=STATUSES,
    wait=math.inf,
    forever=FOREVER,
    missing=UNDEFINED,
    plain=3,
):
    """Has one."""
''',
}


def test_constant_defaults_show_their_values() -> None:
    """The docs' griffe extension shows a default that names a constant, imported or reached
    through its module or another constant, as the constant's value; a name whose value is
    an expression, or outside the package, stays as written."""
    hooks = load_hooks()
    extensions = griffe.load_extensions(hooks.ConstantValues)
    with griffe.temporary_visited_package("pkg", CONSTANTS, extensions=extensions) as package:
        connect = package["_client.connect"]
        shown = {parameter.name: str(parameter.default) for parameter in connect.parameters}
    assert ast.literal_eval(shown.pop("url")) == "https://api.example.test/v1"  # either quotes
    assert shown == {
        "timeout": "60.0",
        "limit": "100",
        "retries": "2",
        "chained": "100",
        "size": "MIB",
        "statuses": "STATUSES",
        "wait": "math.inf",
        "forever": "FOREVER",
        "missing": "UNDEFINED",
        "plain": "3",
    }


def public_callables() -> list[tuple[griffe.Function, Callable[..., object]]]:
    """Every public function and method of aiobatches and aiobatches.testing (constructors
    included) as the docs site loads it, beside the object Python runs."""
    hooks = load_hooks()
    extensions = griffe.load_extensions(hooks.ConstantValues, hooks.PublicBases)
    found: list[tuple[griffe.Function, Callable[..., object]]] = []
    for path in hooks.PUBLIC_MODULES:
        module = griffe.load(path, extensions=extensions)
        runtime = importlib.import_module(path)
        for name in sorted(str(export) for export in module.exports or ()):
            obj, value = module[name], getattr(runtime, name)
            if isinstance(obj, griffe.Alias):
                obj = obj.final_target
            if isinstance(obj, griffe.Function):
                found.append((obj, value))
            elif isinstance(obj, griffe.Class):
                # A hidden base's methods (the clients' shared `_Client`) show as the class's own.
                members = (
                    m.final_target if isinstance(m, griffe.Alias) else m
                    for m in obj.members.values()
                )
                found.extend(
                    (member, getattr(value, member.name))
                    for member in members
                    if isinstance(member, griffe.Function)
                    and (member.name == "__init__" or not member.name.startswith("_"))
                )
    return found


def literal(text: str) -> tuple[bool, object]:
    """Whether `text` is a Python literal, and its value if so."""
    try:
        return True, ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError):
        return False, None


def test_the_reference_shows_each_literal_default_as_python_sees_it() -> None:
    """Wherever a public signature's default is a literal when Python runs it, the reference
    shows that very literal, not the name of the constant that holds it."""
    checked = 0
    for function, runtime in public_callables():
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(runtime).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        for parameter in function.parameters:
            if parameter.name not in defaults:
                continue
            is_literal, _ = literal(repr(defaults[parameter.name]))
            if not is_literal:
                continue  # math.inf, a frozenset, an enum member: shown as written
            shown = str(parameter.default)
            assert literal(shown) == (True, defaults[parameter.name]), (function.path, shown)
            checked += 1
    assert checked > 20  # the clients' and the fake server's settings, at least


def reference_options(page: str) -> dict[str, str]:
    """Each `::: name` of a reference page, with the indented options below it as text."""
    text = (DOCS / "reference" / page).read_text()
    return {
        match["name"]: match["options"]
        for match in re.finditer(r"^::: (?P<name>\S+)\n(?P<options>(?:[ \t]+\S.*\n)*)", text, re.M)
    }


def test_the_reference_hides_only_constructors_that_the_api_calls_for_users() -> None:
    """The reference shows no constructor of a class users get from a method (a stream, its
    pages, a watch), and each class whose constructor it hides is one such class."""
    hidden = {
        name
        for name, options in reference_options("aiobatches.md").items()
        if "merge_init_into_class: false" in options
    }
    assert hidden >= {"aiobatches.BatchStream", "aiobatches.PageIterator", "aiobatches.BatchWatch"}
    handed_out = {  # `BatchStream[B]`: the class, whatever API's batches it holds
        str(function.returns).rpartition(".")[2].partition("[")[0]
        for function, _ in public_callables()
        if function.returns is not None
    }
    assert {name.removeprefix("aiobatches.") for name in hidden} <= handed_out


BASES: Final = {
    "__init__.py": """
from pkg._models import Child, Public

__all__ = ["Child", "Public"]
""",
    "_models.py": '''
import enum


class _Hidden:
    """A private base."""


class Mixin:
    """Defined in a private module, and not exported."""


class Public:
    """Exported."""


class Child(_Hidden, Mixin, Public, str, enum.Enum):
    """Exported, with one base of each kind."""
''',
}


def test_private_bases_are_left_out_of_a_class_bases() -> None:
    """The docs' griffe extension shows a class's bases that the package exports, and those
    from elsewhere, but none that the package keeps to itself."""
    hooks = load_hooks()
    extensions = griffe.load_extensions(hooks.PublicBases)
    with griffe.temporary_visited_package("pkg", BASES, extensions=extensions) as package:
        shown = [str(base) for base in package["_models.Child"].bases]
    assert shown == ["Public", "str", "enum.Enum"]


def test_the_reference_shows_no_private_base() -> None:
    """Every base the reference shows for a public class is exported, or not aiobatches' own."""
    hooks = load_hooks()
    extensions = griffe.load_extensions(hooks.PublicBases)
    package = griffe.load("aiobatches", extensions=extensions)
    exported = hooks.exported_paths(package)
    bases = {
        f"{cls.path} < {base.canonical_path if isinstance(base, griffe.Expr) else base}"
        for cls in hooks.defined_objects(package)
        if isinstance(cls, griffe.Class) and cls.path in exported
        for base in cls.bases
    }
    private = {
        base
        for base in bases
        if base.partition(" < ")[2].startswith("aiobatches.")
        and base.partition(" < ")[2] not in exported
    }
    assert private == set()
    assert "aiobatches._client.AzureClient < aiobatches._client.Client" in bases
