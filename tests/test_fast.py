"""The generated fast path agrees with the detailed cattrs path and never accepts more."""

from __future__ import annotations

import copy
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiobatches import Batch, BatchRequestCounts, BatchStatus, BatchUsage
from aiobatches._converter import _detailed, make_converter
from aiobatches._fast import Unusual, structure_function
from aiobatches.testing import synthetic_batches

SAMPLES = synthetic_batches(300, seed=5)
fast = structure_function(Batch)

JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a key or list position inside a decoded JSON value."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*prefix, key))
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((*prefix, index))
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated_items(draw: st.DrawFn) -> dict[str, Any]:
    """A real-looking batch with one value replaced by any JSON value, or one key removed."""
    item = copy.deepcopy(draw(st.sampled_from(SAMPLES)))
    path = draw(st.sampled_from(_paths(item)))
    parent = item
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return item


@settings(max_examples=600, derandomize=True)
@given(item=mutated_items())
def test_fast_path_never_accepts_what_the_detailed_path_rejects(item: dict[str, Any]) -> None:
    """Any mutation: the fast path either declines or builds exactly what cattrs builds."""
    try:
        expected = _detailed.structure(item, Batch)
    except Exception:  # whatever cattrs rejects, the fast path must decline
        with pytest.raises(Unusual):
            fast(item)
        return
    try:
        got = fast(item)
    except Unusual:
        return
    assert got == expected
    assert type(got) is Batch


def test_fast_path_takes_every_realistic_batch() -> None:
    """Batches shaped as the API sends them never need the slow path, and match it."""
    for item in SAMPLES:
        assert fast(item) == _detailed.structure(item, Batch)


def test_fast_results_are_genuine_frozen_models() -> None:
    """What the fast path builds is a real, frozen model, equal and hashing like one built
    by hand, and nested objects are real models too."""
    item = next(item for item in SAMPLES if item["usage"] and item["metadata"] is None)
    got = fast(item)
    by_hand = Batch(
        **{
            **item,
            "status": BatchStatus(item["status"]),
            "request_counts": BatchRequestCounts(**item["request_counts"]),
            "usage": _detailed.structure(item["usage"], BatchUsage),
        }
    )
    assert got == by_hand
    assert hash(got) == hash(by_hand)
    assert type(got.request_counts) is BatchRequestCounts
    assert type(got.usage) is BatchUsage
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        got.id = "other"  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        got.usage.total_tokens = 0  # type: ignore[misc, union-attr]


def test_converter_uses_the_fast_path_and_falls_back() -> None:
    """make_converter() structures the usual shape fast and an absent key through cattrs."""
    converter = make_converter()
    item = dict(SAMPLES[0])
    assert converter.structure(item, Batch) == fast(item)
    del item["usage"]
    with pytest.raises(Unusual):
        fast(item)
    assert converter.structure(item, Batch).usage is None
