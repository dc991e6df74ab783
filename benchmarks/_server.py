"""The benchmark's server process: list pages served as cheaply as possible on 127.0.0.1.

It runs apart from the client so that the client's CPU time is measured alone.
Pages of precomputed batches are cached by cursor after their first request;
with `--generated` batches are made on the fly from templates, so millions
cost the server no memory. `?delay_ms=N` holds a page back N ms;
`?delay_ms=A,B,C` holds the first page back A ms, the second B, and so on
in a cycle (pages counted from the top of the list, by `limit`).

Run as `python -m benchmarks._server --count N [--generated]`; it prints its
base URL on one line and serves until its standard input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
from aiohttp import web

from aiobatches.testing import synthetic_batches

_TEMPLATES = 500
_PLACEHOLDER = "batch_placeholder_id"


class PrecomputedPages:
    """`count` synthetic batches; each page body is built once, then served from a cache."""

    def __init__(self, count: int) -> None:
        batches = synthetic_batches(count, seed=42)
        self._ids = [batch["id"] for batch in batches]
        self._encoded = [orjson.dumps(batch) for batch in batches]
        self._positions = {batch_id: index for index, batch_id in enumerate(self._ids)}
        self._cache: dict[tuple[str | None, int], bytes] = {}

    def start(self, after: str | None) -> int:
        return 0 if after is None else self._positions[after] + 1

    def page(self, after: str | None, limit: int) -> bytes:
        key = (after, limit)
        if key not in self._cache:
            start = self.start(after)
            end = min(start + limit, len(self._ids))
            self._cache[key] = _body(
                self._encoded[start:end], self._ids[start:end], has_more=end < len(self._ids)
            )
        return self._cache[key]


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


def _body(encoded: list[bytes], ids: list[str], *, has_more: bool) -> bytes:
    envelope = {
        "object": "list",
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
        "has_more": has_more,
    }
    return b'{"data":[' + b",".join(encoded) + b"]," + orjson.dumps(envelope)[1:]


async def serve(pages: PrecomputedPages | GeneratedPages | AwaitingPages) -> None:
    """Serve until standard input closes (the harness ending or dying)."""

    async def list_batches(request: web.Request) -> web.Response:
        after = request.query.get("after")
        limit = int(request.query.get("limit", "20"))
        delays = [int(ms) for ms in request.query.get("delay_ms", "0").split(",")]
        delay = delays[pages.start(after) // limit % len(delays)]
        if delay:
            await asyncio.sleep(delay / 1000)
        body = pages.page(after, limit)
        return web.Response(body=body, content_type="application/json")

    async def retrieve_batch(request: web.Request) -> web.Response:
        assert isinstance(pages, AwaitingPages)
        index = int(request.match_info["batch_id"].removeprefix("batch_"))
        return web.Response(body=pages.batch(index), content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/batches", list_batches)
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
    pages: PrecomputedPages | GeneratedPages | AwaitingPages
    if args.unfinished is not None:
        pages = AwaitingPages(args.count, args.unfinished)
    elif args.generated:
        pages = GeneratedPages(args.count)
    else:
        pages = PrecomputedPages(args.count)
    asyncio.run(serve(pages))


if __name__ == "__main__":
    main()
