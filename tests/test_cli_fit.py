"""A table on a real terminal fits its width and stays aligned: no row is wider than the
terminal, and every row's cells start where the header's columns do. Where columns kept
whole (ids, statuses, times, sources) do not all fit, whole columns are dropped, the times
first, never cut short under a header they no longer line up with."""

from __future__ import annotations

import itertools

import pytest
from _helpers import shown_on_terminal

WIDTHS = (60, 80, 100, 120)


async def on_terminal(columns: int, *args: str) -> list[str]:
    """The lines `aiobatches ARGS` shows on a terminal `columns` wide (stderr not shown)."""
    shown = await shown_on_terminal(*args, columns=columns)
    return shown.decode().replace("\r\n", "\n").splitlines()


def starts(header: str) -> list[int]:
    """Where each of the header's columns starts."""
    return [i for i, char in enumerate(header) if char != " " and (i == 0 or header[i - 1] == " ")]


def assert_fits_and_aligns(lines: list[str], columns: int) -> None:
    """Every line within `columns`, and each row's cells inside the header's columns."""
    header, *rows = lines
    assert rows
    assert all(len(line) <= columns for line in lines), lines
    bounds = starts(header)
    for row in rows:
        for start, end in itertools.pairwise(bounds):
            cell = row.ljust(end)[start:end]  # rows are written without trailing blanks
            assert cell.endswith("  "), (header, row)  # a cell never runs into the next
            assert start == 0 or row[start - 2 : start] == "  ", (header, row)


@pytest.mark.parametrize("columns", WIDTHS)
@pytest.mark.parametrize(
    "args",
    [
        ("--provider", "anthropic"),
        ("--project", "proj_a", "--project", "proj_b"),
        (),
    ],
    ids=["anthropic", "merged", "openai"],
)
async def test_list_table_fits_and_aligns(columns: int, args: tuple[str, ...]) -> None:
    """`list` on a terminal 60 to 120 wide: no line wider, each row under its header."""
    lines = await on_terminal(columns, "list", "--demo", "--max-items", "6", *args)
    assert len(lines) == 7
    assert lines[0].startswith("SOURCE  ID" if "--project" in args else "ID  ")
    assert_fits_and_aligns(lines, columns)


@pytest.mark.parametrize("columns", WIDTHS)
async def test_anthropic_counts_come_before_its_times(columns: int) -> None:
    """Anthropic's COUNTS are kept whole while a time can go: ENDED first, then CREATED."""
    lines = await on_terminal(
        columns, "list", "--demo", "--provider", "anthropic", "--max-items", "6"
    )
    header = lines[0].split()
    assert header[:2] == ["ID", "STATUS"]
    assert "COUNTS" in header
    if columns >= 80:
        assert all("…" not in line for line in lines)
    assert ("ENDED" in header) == (columns >= 120)
    assert ("CREATED" in header) == (columns >= 100)


async def test_wait_table_fits_and_aligns() -> None:
    """`wait --provider anthropic` shows its table on an 80-column terminal, fitted alike."""
    lines = await on_terminal(80, "wait", "--demo", "--provider", "anthropic")
    assert_fits_and_aligns(lines, 80)
