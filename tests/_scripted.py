"""A list-batches server whose batches the test rewrites between polls, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import orjson
from _helpers import LoopbackServer, envelope
from aiohttp import web

import aiobatches
from aiobatches import _retry
from aiobatches.testing import synthetic_batches

KEY = "sk-scripted-0123456789"
NOW = 1_763_000_000
"""The scripted batches' present: batch `index` was created `index` minutes before it."""
FINISHED = ("completed", "failed", "expired", "cancelled")
UNFINISHED = ("validating", "in_progress", "finalizing", "cancelling")


def make_batch(index: int, *, status: str, created_at: int, done: int = 0) -> dict[str, Any]:
    """A realistic batch dict with the given id number, status, creation time and progress."""
    batch = copy.deepcopy(synthetic_batches(1, seed=index)[0])
    batch.update(id=f"batch_{index:06d}", status=status, created_at=created_at)
    batch["request_counts"] = {"total": 1_000, "completed": done, "failed": 0}
    return batch


def batch(index: int, status: str, *, done: int = 0) -> dict[str, Any]:
    """Batch number `index`, created `index` minutes before NOW (0 is the newest)."""
    return make_batch(index, status=status, created_at=NOW - 60 * index, done=done)


def watched_batches() -> list[dict[str, Any]]:
    """What a watch starts from: A in progress, B validating, C completed (newest first)."""
    return [batch(1, "in_progress", done=100), batch(2, "validating"), batch(3, "completed")]


class ScriptedServer(LoopbackServer):
    """Serves `batches` (newest first) as the API does; counts list and retrieve requests."""

    def __init__(self, batches: list[dict[str, Any]]) -> None:
        self.batches = batches
        self.lists: list[dict[str, str]] = []
        self.retrievals: list[str] = []
        self.poll_after_ms: int | None = None
        self.fail_lists = 0
        """How many coming list requests answer 503 before serving again."""
        self.list_faults: list[tuple[int, dict[str, str]]] = []
        """Statuses and headers the coming list requests answer with, one each, in order."""
        self.retrieve_faults: list[tuple[int, dict[str, str]]] = []
        """Statuses and headers the coming retrievals answer with, one each, in order."""
        self.answer_as: dict[str, str] = {}
        """Retrievals of a key answered with the batch of its value (a server's mix-up)."""
        self.unlisted: set[str] = set()
        """Batches the listing no longer shows, though a retrieve still finds them."""
        self.held: set[str] = set()
        """Batches whose retrievals are held unanswered until `release` is set."""
        self.release = asyncio.Event()
        self.latency = 0.0
        """Seconds each answer waits (real time)."""

    def client(self, **kwargs: Any) -> aiobatches.Client:
        """A client of this server that does not retry (retries are not the point here)."""
        return aiobatches.Client(api_key=KEY, base_url=self.url, max_retries=0, **kwargs)

    def _headers(self) -> dict[str, str]:
        return (
            {} if self.poll_after_ms is None else {"openai-poll-after-ms": str(self.poll_after_ms)}
        )

    async def _list(self, request: web.Request) -> web.Response:
        self.lists.append(dict(request.query))
        await asyncio.sleep(self.latency)
        if self.list_faults:
            return _fault(*self.list_faults.pop(0))
        if self.fail_lists:
            self.fail_lists -= 1
            return web.json_response({"error": {"message": "busy"}}, status=503)
        limit = int(request.query.get("limit", "20"))
        after = request.query.get("after")
        listed = [batch for batch in self.batches if batch["id"] not in self.unlisted]
        ids = [batch["id"] for batch in listed]
        start = 0 if after is None else ids.index(after) + 1
        window = listed[start : start + limit]
        body = envelope(window, has_more=start + limit < len(ids))
        return web.Response(
            body=orjson.dumps(body), content_type="application/json", headers=self._headers()
        )

    async def _retrieve(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        self.retrievals.append(batch_id)
        await asyncio.sleep(self.latency)
        if batch_id in self.held:
            await self.release.wait()
        if self.retrieve_faults:
            return _fault(*self.retrieve_faults.pop(0))
        served = self.answer_as.get(batch_id, batch_id)
        for batch in self.batches:
            if batch["id"] == served:
                return web.Response(
                    body=orjson.dumps(batch),
                    content_type="application/json",
                    headers=self._headers(),
                )
        message = f"No batch found with id '{batch_id}'."
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        return web.json_response({"error": error}, status=404)


def _fault(status: int, headers: dict[str, str]) -> web.Response:
    """An OpenAI-shaped error answer with this status and these headers."""
    error = {"message": f"scripted {status}", "type": "server_error", "param": None, "code": None}
    return web.json_response({"error": error}, status=status, headers=headers)


@contextlib.contextmanager
def between_polls(hook: Callable[[float], Awaitable[None]]) -> Iterator[list[float]]:
    """Within the block, each of aiobatches' sleeps runs `hook(delay)` instead of waiting."""
    delays: list[float] = []

    async def sleeper(delay: float) -> None:
        delays.append(delay)
        await hook(delay)

    token = _retry._sleeper.set(sleeper)
    try:
        yield delays
    finally:
        _retry._sleeper.reset(token)


async def nothing(_: float) -> None:
    """A pause that changes nothing."""


async def events_of(
    watch: aiobatches.BatchWatch[aiobatches.Batch],
) -> AsyncIterator[aiobatches.BatchEvent[aiobatches.Batch]]:
    """The watch's events, closing it at the end."""
    async with watch:
        async for event in watch:
            yield event
