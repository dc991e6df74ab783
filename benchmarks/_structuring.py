"""Structuring per batch: a page with every key present against pages with keys left out.

Real servers leave keys out (the official example response has no `model`
and no `usage`), so an absent key must cost what a present one does. Three
pages hold the same batches and structure to equal models; they differ only
in how the missing values are sent. They are parsed in one process, in
interleaved trials (A B C, A B C, ...), so that machine noise hits all alike.
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from aiobatches import Batch
from aiobatches._converter import parse_page
from aiobatches.testing import synthetic_batches

from ._common import spread, table

PAGE = 100
PRESENT = "every key present (nulls sent)"
REAL = "as the real API (keys omitted)"
SPARSE = "every null omitted"


def pages() -> dict[str, dict[str, Any]]:
    """The three shapes of one page of realistic batches, as decoded JSON."""
    real = synthetic_batches(PAGE, seed=42)
    present = [_every_key(item) for item in real]
    sparse = [_without_nulls(item) for item in present]
    return {PRESENT: _envelope(present), REAL: _envelope(real), SPARSE: _envelope(sparse)}


def _every_key(item: dict[str, Any]) -> dict[str, Any]:
    full = {field.name: item.get(field.name) for field in attrs.fields(Batch)}
    if full["errors"] is not None:
        full["errors"] = {"object": None, "data": [], **full["errors"]}
    return full


def _without_nulls(item: dict[str, Any]) -> dict[str, Any]:
    sparse = {key: value for key, value in item.items() if value is not None}
    if "errors" in sparse:
        sparse["errors"] = {
            key: value for key, value in sparse["errors"].items() if value is not None
        }
    return sparse


def _envelope(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"],
        "last_id": items[-1]["id"],
        "has_more": True,
    }


def _copies(payload: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """`count` envelopes over the same items: `parse_page` lets go of the items it reads."""
    return [{**payload, "data": list(payload["data"])} for _ in range(count)]


def run(loops: int, trials: int) -> str:
    """Parse each page `loops` times per trial, `trials` times; return the table."""
    shapes = pages()
    expected = parse_page(*_copies(shapes[PRESENT], 1)).batches
    for payload in shapes.values():
        parsed = parse_page(*_copies(payload, 1))
        assert parsed.count == len(parsed.batches) == PAGE, parsed.invalid
        assert parsed.batches == expected
    timings: dict[str, list[float]] = {name: [] for name in shapes}
    for _ in range(trials):
        for name, payload in shapes.items():
            copies = _copies(payload, loops)
            start = time.perf_counter()
            for copy in copies:
                parse_page(copy)
            timings[name].append((time.perf_counter() - start) / loops / PAGE * 1e6)
    rows = []
    for name, values in timings.items():
        # Each trial's ratio to the present page of the same trial, so drift cancels out.
        ratios = [value / base for value, base in zip(values, timings[PRESENT], strict=True)]
        rows.append([name, spread(values, "{:.2f}"), spread(ratios, "{:.3f}x")])
    title = (
        f"Structuring per batch, parse_page of {PAGE} batches, "
        f"{trials} interleaved trials of {loops} pages"
    )
    headers = ["page", "us/batch", "vs every key present"]
    return f"### {title}\n\n" + table(headers, rows)
