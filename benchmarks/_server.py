"""The benchmark's server process: list pages served as cheaply as possible on 127.0.0.1.

It runs apart from the client so that the client's CPU time is measured alone.
Pages of precomputed batches are cached by cursor after their first request;
with `--generated` batches are made on the fly from templates, so millions
cost the server no memory. `?delay_ms=N` holds a page back N ms;
`?delay_ms=A,B,C` holds the first page back A ms, the second B, and so on
in a cycle (pages counted from the top of the list, by `limit`).

Precomputed pages are also served as Anthropic's Message Batches at
`/v1/messages/batches` (`after_id`, Anthropic's envelope), each written from the
same synthetic batch, and both lists are served as three accounts as well: the
key `sk-bench` lists every batch, `sk-bench-0`, `-1` and `-2` each a third of
them (every third batch, so the accounts' batches interleave in time).

Run as `python -m benchmarks._server --count N [--generated]`; it prints its
base URL on one line and serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from aiobatches._fake.anthropic import message_batch
from aiobatches.testing import synthetic_batches

_TEMPLATES = 500
_PLACEHOLDER = "batch_placeholder_id"
KEY = "sk-bench"
"""The key that lists every batch; `f"{KEY}-{n}"` lists account `n` of `ACCOUNTS`."""
ACCOUNTS = 3
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class PrecomputedPages:
    """Some synthetic batches, encoded; each page body is built once, then served from a
    cache. `anthropic` writes the page envelope as Anthropic's (no `object`)."""

    def __init__(self, batches: list[dict[str, Any]], *, anthropic: bool = False) -> None:
        self._ids = [batch["id"] for batch in batches]
        self._encoded = [orjson.dumps(batch) for batch in batches]
        self._positions = {batch_id: index for index, batch_id in enumerate(self._ids)}
        self._cache: dict[tuple[str | None, int], bytes] = {}
        self._anthropic = anthropic

    def start(self, after: str | None) -> int:
        return 0 if after is None else self._positions[after] + 1

    def page(self, after: str | None, limit: int) -> bytes:
        key = (after, limit)
        if key not in self._cache:
            start = self.start(after)
            end = min(start + limit, len(self._ids))
            self._cache[key] = _body(
                self._encoded[start:end],
                self._ids[start:end],
                has_more=end < len(self._ids),
                anthropic=self._anthropic,
            )
        return self._cache[key]


def accounts(
    batches: list[dict[str, Any]], *, anthropic: bool = False
) -> dict[str, PrecomputedPages]:
    """The pages of every batch under `KEY`, and of each third under `f"{KEY}-{n}"`."""
    pages = {KEY: PrecomputedPages(batches, anthropic=anthropic)}
    for account in range(ACCOUNTS):
        pages[f"{KEY}-{account}"] = PrecomputedPages(
            batches[account::ACCOUNTS], anthropic=anthropic
        )
    return pages


def anthropic_batches(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each synthetic batch as Anthropic lists a Message Batch (the fake server's own
    translation: statuses folded into three, every request `processing` until the batch
    ends, RFC 3339 microsecond times, `results_url` once ended, nulls where the API sends
    them), under an id shaped as Anthropic's: `msgbatch_01` and 22 base-62 characters."""
    return [
        message_batch({**batch, "id": "batch_" + anthropic_suffix(batch["id"])})
        for batch in batches
    ]


def anthropic_suffix(batch_id: str) -> str:
    """`01` and 22 base-62 digits drawn from an OpenAI batch id, as Anthropic's ids end
    (`msgbatch_013Zva2CMHLNnXjNJJKqJ2EF` in its documentation)."""
    number = int.from_bytes(hashlib.blake2b(batch_id.encode(), digest_size=17).digest())
    digits = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "01" + "".join(reversed(digits))


class GeneratedPages:
    """`count` batches made per request from a few templates; ids encode their position."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._templates = []
        for batch in synthetic_batches(_TEMPLATES, seed=42):
            prefix, suffix = orjson.dumps({**batch, "id": _PLACEHOLDER}).split(
                _PLACEHOLDER.encode()
            )
            self._templates.append((prefix, suffix))

    def start(self, after: str | None) -> int:
        return _position(after)

    def page(self, after: str | None, limit: int) -> bytes:
        start = self.start(after)
        end = min(start + limit, self._count)
        ids = [f"batch_{index:024d}" for index in range(start, end)]
        encoded = [
            b"%s%s%s" % (prefix, batch_id.encode(), suffix)
            for batch_id, (prefix, suffix) in zip(
                ids,
                (self._templates[index % _TEMPLATES] for index in range(start, end)),
                strict=True,
            )
        ]
        return _body(encoded, ids, has_more=end < self._count)


class AwaitingPages:
    """`unfinished` in-progress batches on top of `count - unfinished` completed ones,
    made per request from templates, created ten seconds apart: an account with history."""

    _ID = "batch_placeholder_id"
    _CREATED = 987_654_321_987_654

    def __init__(self, count: int, unfinished: int) -> None:
        self._count = count
        self._unfinished = unfinished
        self._templates: dict[bool, list[tuple[bytes, bytes, bytes]]] = {True: [], False: []}
        for batch in synthetic_batches(_TEMPLATES, seed=42):
            finished = batch["status"] == "completed"
            if finished or batch["status"] == "in_progress":
                raw = orjson.dumps({**batch, "id": self._ID, "created_at": self._CREATED})
                head, rest = raw.split(self._ID.encode())
                middle, tail = rest.split(str(self._CREATED).encode())
                self._templates[finished].append((head, middle, tail))

    def batch(self, index: int) -> bytes:
        finished = index >= self._unfinished
        templates = self._templates[finished]
        head, middle, tail = templates[index % len(templates)]
        created = b"%d" % (1_763_000_000 - 10 * index)
        return b"%s%s%s%s%s" % (head, self._id(index).encode(), middle, created, tail)

    def start(self, after: str | None) -> int:
        return _position(after)

    def page(self, after: str | None, limit: int) -> bytes:
        start = self.start(after)
        end = min(start + limit, self._count)
        ids = [self._id(index) for index in range(start, end)]
        encoded = [self.batch(index) for index in range(start, end)]
        return _body(encoded, ids, has_more=end < self._count)

    @staticmethod
    def _id(index: int) -> str:
        return f"batch_{index:024d}"


def _position(after: str | None) -> int:
    """Where the page after `after` starts, for ids that encode their position."""
    return 0 if after is None else int(after.removeprefix("batch_")) + 1


def _body(
    encoded: list[bytes], ids: list[str], *, has_more: bool, anthropic: bool = False
) -> bytes:
    first_id, last_id = (ids[0], ids[-1]) if ids else (None, None)
    envelope: dict[str, Any]
    if anthropic:  # Anthropic's envelope, in its order
        envelope = {"has_more": has_more, "first_id": first_id, "last_id": last_id}
    else:
        envelope = {
            "object": "list",
            "first_id": first_id,
            "last_id": last_id,
            "has_more": has_more,
        }
    return b'{"data":[' + b",".join(encoded) + b"]," + orjson.dumps(envelope)[1:]


Pages = PrecomputedPages | GeneratedPages | AwaitingPages


async def serve(
    lists: Mapping[str, Pages], messages: Mapping[str, PrecomputedPages] | None = None
) -> None:
    """Serve until standard input closes (the harness ending or dying): `lists` at
    `/v1/batches` and `messages` at `/v1/messages/batches`, each by the request's key
    (any key not named lists what `KEY` does)."""

    def listing(
        by_key: Mapping[str, Pages], cursor: str
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            pages = by_key.get(_key(request), by_key[KEY])
            after = request.query.get(cursor)
            limit = int(request.query.get("limit", "20"))
            delays = [int(ms) for ms in request.query.get("delay_ms", "0").split(",")]
            delay = delays[pages.start(after) // limit % len(delays)]
            if delay:
                await asyncio.sleep(delay / 1000)
            body = pages.page(after, limit)
            return web.Response(body=body, content_type="application/json")

        return handler

    async def retrieve_batch(request: web.Request) -> web.Response:
        pages = lists[KEY]
        assert isinstance(pages, AwaitingPages)
        index = int(request.match_info["batch_id"].removeprefix("batch_"))
        return web.Response(body=pages.batch(index), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/batches", listing(lists, "after"))
    if messages is not None:
        app.router.add_get("/v1/messages/batches", listing(messages, "after_id"))
    app.router.add_get("/v1/batches/{batch_id}", retrieve_batch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"http://{host}:{port}/v1", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--generated", action="store_true")
    parser.add_argument("--unfinished", type=int, help="serve an account with history")
    args = parser.parse_args()
    if args.unfinished is not None:
        asyncio.run(serve({KEY: AwaitingPages(args.count, args.unfinished)}))
    elif args.generated:
        asyncio.run(serve({KEY: GeneratedPages(args.count)}))
    else:
        batches = synthetic_batches(args.count, seed=42)
        asyncio.run(serve(accounts(batches), accounts(anthropic_batches(batches), anthropic=True)))


def _key(request: web.Request) -> str:
    """The request's key: its `x-api-key` (`AnthropicClient` sends one), else the
    `Authorization: Bearer` one (our `Client`, OpenAI's SDK, and Anthropic's SDK 2.x)."""
    key = request.headers.get("x-api-key")
    return (
        key if key is not None else request.headers.get("Authorization", "").removeprefix("Bearer ")
    )


if __name__ == "__main__":
    main()
