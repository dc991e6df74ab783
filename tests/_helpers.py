"""Small helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import aiobatches

API_KEY = "sk-test-0123456789abcdef"


def stream_tasks() -> list[asyncio.Task[object]]:
    """Tasks started by aiobatches streams that are still running."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("aiobatches") and not task.done()
    ]


def ids(batches: Iterable[aiobatches.Batch]) -> list[str]:
    """The ids of some batches, in order."""
    return [batch.id for batch in batches]
