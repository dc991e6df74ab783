"""`list`'s progress line on a terminal's stderr never shares a line with a row on stdout,
the same terminal: it is cleared before rows are written and drawn again after."""

from __future__ import annotations

import io
import re

import pytest
from _helpers import shown_on_terminal

from aiobatches._cli._output import Progress

_CONTROL = re.compile(r"\r|\x1b\[K|\n|[^\r\n\x1b]+")


def screen(shown: str) -> list[str]:
    """The lines a terminal keeps of `shown`: carriage returns, erase-to-end and newlines
    applied as a terminal applies them (the only controls a listing writes)."""
    lines: list[str] = []
    line, cursor = "", 0
    for token in _CONTROL.findall(shown):
        if token == "\r":
            cursor = 0
        elif token == "\x1b[K":
            line = line[:cursor]
        elif token == "\n":
            lines.append(line)
            line, cursor = "", 0
        else:
            line = line[:cursor] + token + line[cursor + len(token) :]
            cursor += len(token)
    return [*lines, line]


async def both_on_terminal(*args: str) -> str:
    """What `aiobatches ARGS` shows with stdout and stderr on one terminal."""
    return (await shown_on_terminal(*args, stderr_too=True)).decode()


@pytest.mark.parametrize(
    "args",
    [
        ("--project", "proj_a", "--project", "proj_b", "--fields", "source,id,status"),
        ("--limit", "2", "--fields", "id,status"),
    ],
    ids=["merged", "pages"],
)
async def test_no_row_shares_a_line_with_progress(args: tuple[str, ...]) -> None:
    """Every line the terminal keeps is the header or a row, none with progress text in it."""
    shown = await both_on_terminal("list", "--demo", "--max-items", "8", "--prefetch", "0", *args)
    assert "batches/s" in shown  # the progress line was drawn
    lines = [line for line in screen(shown) if line]
    assert len(lines) == 9
    assert lines[0].split()[-2:] == ["ID", "STATUS"]
    for line in lines[1:]:
        assert "batch" not in line.replace("batch_", ""), line
        assert re.fullmatch(r"(proj_\w  +)?batch_\w+  +\w+", line), line


def test_one_batch_and_one_page_are_singular() -> None:
    """The tally says `1 batch, 1 page`, and `2 batches, 2 pages`."""
    err = io.StringIO()
    progress = Progress(err)
    progress.page(1)
    assert screen(err.getvalue())[-1].startswith("1 batch, 1 page, ")
    progress.hide()
    assert screen(err.getvalue())[-1] == ""
    err = io.StringIO()
    progress = Progress(err)
    progress.page(2)
    assert screen(err.getvalue())[-1].startswith("2 batches, 1 page, ")
