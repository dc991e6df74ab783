"""Hostile and odd servers over real HTTP on 127.0.0.1: bounded work, tolerance, redaction.

Each test meets the client the way an attacker or an unusual server would: a
real aiohttp.web server on port 0 (the shipped fake, or a small one written
here) and, where memory is the point, the client in a child process whose
peak RSS is measured.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import sys
import textwrap
import traceback
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import pytest
from _helpers import API_KEY, envelope, ids, stream_tasks
from aiohttp import web

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, recorded_sleeps

KIB: Final = 1 << 10
MIB: Final = 1 << 20
GIB: Final = 1 << 30
PAGE_CAP: Final = 16 * MIB
"""The contract's largest page body, counted after decompression."""
ERROR_CAP: Final = 64 * KIB
"""The contract's largest error body read."""
GIVE_UP: Final = 256 * MIB
"""An "endless" body ends here, so a client that never hangs up cannot run the test forever."""
RSS_BOUND_MIB: Final = 200
"""Generous peak RSS of a child process listing once (its baseline is Python plus aiohttp)."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- a small server whose answers the test writes -------------------------------------------------


class TinyServer:
    """A real aiohttp.web server on 127.0.0.1 (port 0); every request goes to `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.queries: list[dict[str, str]] = []
        """The query of every request, in order."""
        self.headers: list[dict[str, str]] = []
        """The headers of every request, in order."""
        self.url = ""
        """The base URL to hand to a client, ending in `/v1`."""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/v1"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        self.headers.append(dict(request.headers))
        return await self.handler(request)


def batch(number: int, **changes: Any) -> dict[str, Any]:
    """A completed batch as the API sends it (optional fields null, no `usage` key)."""
    created = 1_763_000_000 - 60 * number
    item: dict[str, Any] = {
        "id": f"batch_{number:04d}",
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4.1-mini-2025-04-14",
        "errors": None,
        "input_file_id": f"file-in{number:04d}",
        "completion_window": "24h",
        "status": "completed",
        "output_file_id": f"file-out{number:04d}",
        "error_file_id": None,
        "created_at": created,
        "in_progress_at": created + 5,
        "expires_at": created + 86_400,
        "finalizing_at": created + 600,
        "completed_at": created + 620,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 10, "completed": 10, "failed": 0},
        "metadata": {"run": str(number)},
    }
    item.update(changes)
    return item


def batches(count: int) -> list[dict[str, Any]]:
    """`count` batches, newest first."""
    return [batch(number) for number in range(1, count + 1)]


def json_bytes(value: object) -> bytes:
    """JSON as a server writes it; Python ints of any size are written literally."""
    return json.dumps(value, ensure_ascii=False).encode()


def listing(
    items: Sequence[Mapping[str, Any]],
    *,
    shape: Callable[[dict[str, Any]], dict[str, Any]] = lambda page: page,
    encode: Callable[[dict[str, Any]], bytes] = json_bytes,
    content_type: str = "application/json",
) -> Handler:
    """A handler serving `items` with the endpoint's `after` and `limit` semantics.

    `shape` may change each page (drop `has_more`, say) and `encode` turns it into bytes.
    """
    positions = {item["id"]: index for index, item in enumerate(items)}

    async def handle(request: web.Request) -> web.StreamResponse:
        limit = int(request.query.get("limit", "20"))
        after = request.query.get("after")
        start = 0 if after is None else positions[after] + 1
        window = items[start : start + limit]
        page = shape(envelope(window, has_more=start + limit < len(items)))
        return web.Response(body=encode(page), headers={"Content-Type": content_type})

    return handle


FIRST_PAGE: Final = [batch(1), batch(2)]


def after_first_page(hostile: Handler) -> Handler:
    """Serve two good batches claiming more, then `hostile` for the page after them."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if "after" not in request.query:
            return web.json_response(envelope(FIRST_PAGE, has_more=True))
        return await hostile(request)

    return handle


def padded(page: Mapping[str, Any], size: int) -> bytes:
    """`page` as JSON of exactly `size` bytes, grown by an unknown `padding` field."""
    bare = json_bytes({**page, "padding": ""})
    assert len(bare) <= size
    return json_bytes({**page, "padding": "x" * (size - len(bare))})


class Flood:
    """A handler that writes `head`, then `filler` until the client hangs up, then `tail`.

    With `announce`, that `Content-Length` is sent, and the connection is cut if
    `limit` bytes of filler went out before the announced length was reached;
    without it the body is chunked and, after `limit` bytes, ends with `tail`.
    It records how much it sent and whether the client hung up first.
    """

    def __init__(
        self,
        *,
        status: int = 200,
        head: bytes = b"",
        filler: bytes = b"x",
        tail: bytes = b"",
        limit: int = GIVE_UP,
        announce: int | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.status = status
        self.head = head
        self.chunk = filler * (256 * KIB // len(filler))
        self.tail = tail
        self.limit = limit
        self.announce = announce
        self.content_type = content_type
        self.sent = 0
        self.hung_up = False
        self.finished = asyncio.Event()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=self.status)
        response.content_type = self.content_type
        if self.announce is not None:
            response.content_length = self.announce
        try:
            await response.prepare(request)
            await response.write(self.head)
            while self.sent < self.limit:
                await response.write(self.chunk)
                self.sent += len(self.chunk)
            if self.announce is not None and len(self.head) + self.sent < self.announce:
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write(self.tail)
            await response.write_eof()
        except ConnectionError:
            self.hung_up = True
        finally:
            self.finished.set()
        return response

    async def stopped(self) -> None:
        """Wait until the handler returned, because the client hung up or it gave up."""
        async with asyncio.timeout(30):  # hang guard: a hung-up client ends this at once
            await self.finished.wait()


def client_for(server: TinyServer | FakeBatchesServer, **kwargs: Any) -> aiobatches.Client:
    """A client bound to `server`, without retries unless told otherwise."""
    kwargs.setdefault("max_retries", 0)
    return aiobatches.Client(api_key=API_KEY, base_url=server.url, **kwargs)


# --- a client in a child process, to measure its memory -------------------------------------------

CHILD: Final = textwrap.dedent(
    """
    import asyncio, json, resource, sys
    import aiobatches

    async def main(url, options):
        outcome = {}
        try:
            async with aiobatches.Client(api_key="sk-child", base_url=url, **options) as client:
                outcome["batches"] = len(await client.list_batches().to_list())
        except Exception as error:
            outcome["error"] = type(error).__name__
            outcome["cursor"] = getattr(error, "cursor", None)
            outcome["status"] = getattr(error, "status_code", None)
        return outcome

    outcome = asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
    # ru_maxrss survives fork and exec (it starts at the parent's peak, and pytest's may be
    # large), so the peak of this process's own memory is read from VmHWM where Linux has it.
    outcome["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome["peak_rss_kib"] = outcome["ru_maxrss_kib"]
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    outcome["peak_rss_kib"] = int(line.split()[1])
    except OSError:
        pass
    print(json.dumps(outcome))
    """
)


async def list_in_child(url: str, *, guard: float = 120, **options: object) -> dict[str, Any]:
    """List from `url` in a child Python process; what it got or raised, and its peak RSS."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("OPENAI_") and not name.upper().endswith("_PROXY")
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        url,
        json.dumps(options),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(guard):  # hang guard: a bounded client needs a second or two
            out, err = await child.communicate()
    except TimeoutError:
        child.kill()
        await child.wait()
        pytest.fail(f"the listing child process was still busy after {guard} s: it stalled")
    assert child.returncode == 0, err.decode()
    outcome: dict[str, Any] = json.loads(out.decode().splitlines()[-1])
    return outcome


def peak_mib(outcome: Mapping[str, Any], case: str) -> float:
    """The child's peak RSS in MiB (Linux reports KiB), printed for the record."""
    mib = float(outcome["peak_rss_kib"]) / KIB
    inherited = float(outcome["ru_maxrss_kib"]) / KIB
    print(
        f"\npeak RSS of the listing child, {case}: {mib:.1f} MiB"
        f" (VmHWM; ru_maxrss, which starts at the parent's peak: {inherited:.1f} MiB)"
    )
    return mib


@functools.cache
def gzip_bomb() -> bytes:
    """About 1 MB of gzip inflating to a 1 GiB page, compressed as a stream (never 1 GiB held)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    parts = [compressor.compress(b'{"object":"list","data":[],"has_more":false,"padding":"')]
    zeros = b"0" * MIB
    parts.extend(compressor.compress(zeros) for _ in range(1024))
    parts.append(compressor.compress(b'"}'))
    parts.append(compressor.flush())
    return b"".join(parts)


async def serve_gzip_bomb(_: web.Request) -> web.StreamResponse:
    """A 200 page of 1 MB on the wire that inflates to 1 GiB."""
    return web.Response(
        body=gzip_bomb(),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )


def endless_page() -> Flood:
    """A chunked 200 page whose padding never ends (until GIVE_UP, where it closes validly)."""
    return Flood(head=b'{"object":"list","data":[],"has_more":false,"padding":"', tail=b'"}')


# --- bounded work: page bodies --------------------------------------------------------------------


@pytest.mark.parametrize("size", [PAGE_CAP + 1, 17 * MIB], ids=["16 MiB + 1", "17 MiB"])
async def test_page_larger_than_16_mib_is_a_validation_error(size: int) -> None:
    """A page body over 16 MiB is an APIResponseValidationError carrying the cursor."""

    async def oversized(request: web.Request) -> web.StreamResponse:
        body = padded(envelope([batch(3)], has_more=False), size)
        return web.Response(body=body, content_type="application/json")

    got: list[aiobatches.Batch] = []
    async with TinyServer(after_first_page(oversized)) as server, client_for(server) as client:
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            async for item in client.list_batches():
                got.append(item)
    assert ids(got) == ["batch_0001", "batch_0002"]
    assert caught.value.cursor == "batch_0002"
    assert len(server.queries) == 2


async def test_page_of_exactly_16_mib_is_read() -> None:
    """A page body of 16 MiB, valid batches padded with an unknown field, still lists."""
    items = batches(3)

    async def full(_: web.Request) -> web.StreamResponse:
        body = padded(envelope(items, has_more=False), PAGE_CAP)
        return web.Response(body=body, content_type="application/json")

    async with TinyServer(full) as server, client_for(server) as client:
        got = await client.list_batches().to_list()
    assert ids(got) == [item["id"] for item in items]


async def test_gzip_page_is_read() -> None:
    """A gzip-encoded page under the cap is decompressed and read."""
    items = batches(30)

    async def gzipped(_: web.Request) -> web.StreamResponse:
        raw = json_bytes(envelope(items, has_more=False))
        body = zlib.compress(raw, wbits=31)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        return web.Response(body=body, headers=headers)

    async with TinyServer(gzipped) as server, client_for(server) as client:
        got = await client.list_batches().to_list()
    assert ids(got) == [item["id"] for item in items]


async def test_content_length_of_1_gib_is_refused_without_reading_it() -> None:
    """A page announcing 1 GiB is an APIResponseValidationError; the client hangs up early."""
    flood = Flood(head=b'{"object":"list","data":[],"has_more":false,"padding":"', announce=GIB)
    async with TinyServer(after_first_page(flood)) as server, client_for(server) as client:
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            await client.list_batches().to_list()
        await flood.stopped()
    assert caught.value.cursor == "batch_0002"
    assert flood.hung_up
    assert flood.sent < GIVE_UP


async def test_endless_chunked_page_is_cut_at_the_cap() -> None:
    """A chunked page that never ends is an APIResponseValidationError; the server stops too."""
    flood = endless_page()
    async with TinyServer(after_first_page(flood)) as server, client_for(server) as client:
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            await client.list_batches().to_list()
        await flood.stopped()
    assert caught.value.cursor == "batch_0002"
    assert flood.hung_up
    assert flood.sent < GIVE_UP


async def test_gzip_bomb_is_a_validation_error() -> None:
    """1 MB of gzip inflating to 1 GiB is an APIResponseValidationError, not a 1 GiB page."""
    async with (
        TinyServer(after_first_page(serve_gzip_bomb)) as server,
        client_for(server) as client,
    ):
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            await client.list_batches().to_list()
    assert caught.value.cursor == "batch_0002"


async def test_child_listing_a_normal_page_stays_small() -> None:
    """The baseline for the memory bounds below: a child listing 100 batches stays small."""
    async with TinyServer(listing(batches(100))) as server:
        outcome = await list_in_child(server.url)
    mib = peak_mib(outcome, "baseline, 100 batches")
    assert outcome.get("batches") == 100
    assert mib < RSS_BOUND_MIB


async def test_gzip_bomb_in_bounded_memory() -> None:
    """A client meeting a gzip bomb raises APIResponseValidationError in bounded memory."""
    async with TinyServer(after_first_page(serve_gzip_bomb)) as server:
        outcome = await list_in_child(server.url)
    mib = peak_mib(outcome, "gzip bomb (1 MB inflating to 1 GiB)")
    assert outcome.get("error") == "APIResponseValidationError", outcome
    assert outcome["cursor"] == "batch_0002"
    assert mib < RSS_BOUND_MIB


async def test_endless_page_in_bounded_memory() -> None:
    """An endless chunked page fails in bounded memory, and the server stops once cut off."""
    flood = endless_page()
    async with TinyServer(after_first_page(flood)) as server:
        outcome = await list_in_child(server.url)
        await flood.stopped()
    mib = peak_mib(outcome, "endless chunked page")
    assert outcome.get("error") == "APIResponseValidationError", outcome
    assert outcome["cursor"] == "batch_0002"
    assert mib < RSS_BOUND_MIB
    assert flood.hung_up
    assert flood.sent < GIVE_UP


# --- bounded work: error bodies -------------------------------------------------------------------


ERROR_HEAD: Final = b'{"error":{"message":"upstream exploded","type":"server_error"},"trace":"'


@pytest.mark.parametrize("framing", ["content-length", "endless"])
async def test_huge_error_body_is_read_up_to_64_kib(framing: str) -> None:
    """A 500 with a 50 MiB (or endless) body is an InternalServerError read only in part."""
    if framing == "content-length":
        flood = Flood(
            status=500, head=ERROR_HEAD, limit=50 * MIB, announce=len(ERROR_HEAD) + 50 * MIB
        )
    else:
        flood = Flood(status=500, head=ERROR_HEAD, tail=b'"}')
    async with TinyServer(flood) as server, client_for(server) as client:
        with pytest.raises(aiobatches.InternalServerError) as caught:
            await client.list_batches().to_list()
        await flood.stopped()
    error = caught.value
    assert error.status_code == 500
    assert len(str(error)) <= 2 * ERROR_CAP
    assert len(repr(error.body)) <= 2 * ERROR_CAP
    assert flood.hung_up
    assert flood.sent < flood.limit


async def test_endless_error_body_in_bounded_memory() -> None:
    """A client meeting a 500 with an endless body raises InternalServerError in bounded memory."""
    flood = Flood(status=500, head=ERROR_HEAD, tail=b'"}')
    async with TinyServer(flood) as server:
        outcome = await list_in_child(server.url, max_retries=0)
        await flood.stopped()
    mib = peak_mib(outcome, "500 with an endless body")
    assert outcome.get("error") == "InternalServerError", outcome
    assert mib < RSS_BOUND_MIB
    assert flood.hung_up
    assert flood.sent < GIVE_UP


async def test_html_error_of_angle_brackets_does_not_stall() -> None:
    """A 502 of 300 KB of `<` is summarised at once (in a child, so a stall cannot hang us)."""

    async def brackets(_: web.Request) -> web.StreamResponse:
        return web.Response(status=502, body=b"<" * 300_000, content_type="text/html")

    async with TinyServer(brackets) as server:
        outcome = await list_in_child(server.url, guard=30, max_retries=0)
    assert outcome.get("error") == "InternalServerError", outcome
    assert outcome["status"] == 502


def nested_list(depth: int) -> bytes:
    """`[[[...]]]`, `depth` levels deep."""
    return b"[" * depth + b"]" * depth


def nested_object(depth: int, top: bytes = b"a") -> bytes:
    """`{"<top>":{"a":{"a":...}}}`, `depth` levels deep."""
    return b'{"' + top + b'":' + b'{"a":' * (depth - 1) + b"{}" + b"}" * depth


DEPTHS: Final = [500, 1_000, 100_000]
"""Under and over the usual recursion limits (Python's 1000, orjson's 1024)."""


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("shape", ["list", "error object"])
async def test_deeply_nested_error_body_is_a_status_error(shape: str, depth: int) -> None:
    """A 400 whose JSON body is nested very deep is a BadRequestError, never RecursionError."""
    body = nested_list(depth) if shape == "list" else nested_object(depth, b"error")

    async def nested(_: web.Request) -> web.StreamResponse:
        return web.Response(status=400, body=body, content_type="application/json")

    async with TinyServer(nested) as server, client_for(server) as client:
        with pytest.raises(aiobatches.BadRequestError) as caught:
            await client.list_batches().to_list()
    assert caught.value.status_code == 400


@pytest.mark.parametrize("depth", DEPTHS)
async def test_deeply_nested_page_is_a_validation_error(depth: int) -> None:
    """A 200 body nested very deep is an APIResponseValidationError, never RecursionError."""

    async def nested(_: web.Request) -> web.StreamResponse:
        return web.Response(body=nested_list(depth), content_type="application/json")

    async with TinyServer(after_first_page(nested)) as server, client_for(server) as client:
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            await client.list_batches().to_list()
    assert caught.value.cursor == "batch_0002"


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("field", ["unknown", "metadata"])
async def test_deeply_nested_field_never_escapes_as_recursion_error(field: str, depth: int) -> None:
    """A very deep unknown field or metadata lists, or fails validation, never RecursionError."""
    deep = nested_object(depth)
    if field == "unknown":
        item = json_bytes(batch(3, extension="DEEP"))
    else:
        item = json_bytes(batch(3, metadata={"run": "DEEP"}))
    item = item.replace(b'"DEEP"', deep)
    body = b'{"object":"list","data":[' + item + b'],"has_more":false}'

    async def nested(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, content_type="application/json")

    got: list[aiobatches.Batch] = []
    refused: aiobatches.APIResponseValidationError | None = None
    async with TinyServer(after_first_page(nested)) as server, client_for(server) as client:
        try:
            async for listed in client.list_batches():
                got.append(listed)
        except aiobatches.APIResponseValidationError as error:
            refused = error
    if refused is None:
        assert ids(got) == ["batch_0001", "batch_0002", "batch_0003"]
    else:
        assert refused.cursor == "batch_0002"
        assert ids(got) == ["batch_0001", "batch_0002"]


# --- one timeout per attempt, redirects included --------------------------------------------------


async def test_timeout_covers_the_attempt_and_its_redirects() -> None:
    """Five same-origin redirects of 0.4 s each exceed timeout=1.0: APITimeoutError."""

    async def slow_hops(request: web.Request) -> web.StreamResponse:
        hop = int(request.query.get("hop", "0"))
        await asyncio.sleep(0.4)
        if hop < 5:
            raise web.HTTPFound(f"/v1/batches?limit=100&hop={hop + 1}")
        return web.json_response(envelope(FIRST_PAGE, has_more=False))

    async with TinyServer(slow_hops) as server, client_for(server, timeout=1.0) as client:
        with pytest.raises(aiobatches.APITimeoutError) as caught:
            await client.list_batches().to_list()
    assert caught.value.cursor is None
    assert len(server.queries) < 6


# --- retries --------------------------------------------------------------------------------------


async def test_huge_max_retries_never_overflow_the_backoff() -> None:
    """max_retries=1100 against 1101 failures: delays stay within 0..8 s, no OverflowError."""
    faults = dict.fromkeys(range(1101), Fault.respond(503))
    async with FakeBatchesServer(count=5, faults=faults) as server:
        with recorded_sleeps() as delays:
            async with client_for(server, max_retries=1100) as client:
                with pytest.raises(aiobatches.InternalServerError):
                    await client.list_batches().to_list()
    assert len(server.page_requests) == 1101
    assert len(delays) == 1100
    assert all(0 <= delay <= 8 for delay in delays)


@pytest.mark.parametrize(
    "headers", [{"retry-after": "100"}, {"retry-after": "120"}], ids=["100 s", "120 s"]
)
async def test_server_delay_up_to_120_s_is_waited_for(headers: dict[str, str]) -> None:
    """A retry-after of 100 s (or exactly 120 s) is waited for, as the official SDK does."""
    async with FakeBatchesServer(count=5, faults={0: Fault.respond(429, headers)}) as server:
        with recorded_sleeps() as delays:
            async with client_for(server, max_retries=2) as client:
                got = await client.list_batches().to_list()
    assert delays == [float(headers["retry-after"])]
    assert len(got) == 5


@pytest.mark.parametrize(
    "headers",
    [{"retry-after": "121"}, {"retry-after-ms": "121000"}],
    ids=["retry-after", "retry-after-ms"],
)
async def test_server_delay_over_120_s_is_raised_at_once(headers: dict[str, str]) -> None:
    """A server delay over 120 s is not waited for: the error says how long it asked."""
    async with FakeBatchesServer(count=5, faults={0: Fault.respond(429, headers)}) as server:
        with recorded_sleeps() as delays:
            async with client_for(server, max_retries=2) as client:
                with pytest.raises(aiobatches.RateLimitError) as caught:
                    await client.list_batches().to_list()
    assert caught.value.retry_after == 121
    assert delays == []
    assert len(server.page_requests) == 1


# --- tolerance at the HTTP level ------------------------------------------------------------------


async def test_page_with_utf8_bom_is_read() -> None:
    """A page starting with a UTF-8 byte order mark is read."""
    items = batches(3)
    handler = listing(items, encode=lambda page: b"\xef\xbb\xbf" + json_bytes(page))
    async with TinyServer(handler) as server, client_for(server) as client:
        got = await client.list_batches().to_list()
    assert ids(got) == [item["id"] for item in items]


async def test_lone_surrogate_escape_does_not_block_the_page() -> None:
    """A batch whose text holds a lone surrogate escape (valid JSON) lists with its page."""
    items = [batch(1, metadata={"note": "PLACEHOLDER"}), batch(2)]
    handler = listing(
        items, encode=lambda page: json_bytes(page).replace(b"PLACEHOLDER", b"\\ud800 x")
    )
    async with TinyServer(handler) as server, client_for(server) as client:
        got = await client.list_batches().to_list()
    assert ids(got) == ["batch_0001", "batch_0002"]
    assert got[0].metadata == {"note": "\ud800 x"}


@pytest.mark.parametrize("charset", ["latin-1", "iso-8859-1"])
async def test_page_in_declared_latin_1_is_decoded(charset: str) -> None:
    """A page declared `charset=latin-1` is decoded as such: metadata keeps its accents."""
    items = [batch(1, metadata={"team": "Caf\u00e9 Z\u00fcrich"}), batch(2)]
    handler = listing(
        items,
        encode=lambda page: json.dumps(page, ensure_ascii=False).encode("latin-1"),
        content_type=f"application/json; charset={charset}",
    )
    async with TinyServer(handler) as server, client_for(server) as client:
        got = await client.list_batches().to_list()
    assert ids(got) == ["batch_0001", "batch_0002"]
    assert got[0].metadata == {"team": "Caf\u00e9 Z\u00fcrich"}


def without_has_more(page: dict[str, Any]) -> dict[str, Any]:
    """The page as Azure's published spec shapes it: no `has_more`, `first_id` or `last_id`."""
    return {"object": page["object"], "data": page["data"]}


def null_has_more(page: dict[str, Any]) -> dict[str, Any]:
    """The page with `has_more: null`."""
    return {**page, "has_more": None}


@pytest.mark.parametrize("shape", [without_has_more, null_has_more])
@pytest.mark.parametrize(("count", "requests"), [(25, 3), (20, 3), (7, 1)])
async def test_missing_has_more_follows_full_pages(
    shape: Callable[[dict[str, Any]], dict[str, Any]], count: int, requests: int
) -> None:
    """Without a usable has_more, full pages are followed and a short (or empty) one ends."""
    items = batches(count)
    async with TinyServer(listing(items, shape=shape)) as server, client_for(server) as client:
        got = await client.list_batches(limit=10).to_list()
    assert ids(got) == [item["id"] for item in items]
    expected = [None, "batch_0010", "batch_0020"][:requests]
    assert [query.get("after") for query in server.queries] == expected
    assert all(query["limit"] == "10" for query in server.queries)


# --- a malformed batch never blocks a listing -----------------------------------------------------

BAD_COUNTS: Final = {"total": "x", "completed": 0, "failed": 0}


def with_bad_third() -> list[dict[str, Any]]:
    """Five batches, the third with a non-integer request count."""
    items = batches(5)
    items[2] = batch(3, request_counts=BAD_COUNTS)
    return items


@pytest.mark.parametrize("prefetch", [0, 1])
async def test_malformed_batch_hands_out_those_before_it_then_names_itself(
    prefetch: int,
) -> None:
    """The batches before a malformed one arrive; the error names it, and after=its id goes on."""
    got: list[aiobatches.Batch] = []
    async with TinyServer(listing(with_bad_third())) as server, client_for(server) as client:
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            async for item in client.list_batches(prefetch=prefetch):
                got.append(item)
        error = caught.value
        assert ids(got) == ["batch_0001", "batch_0002"]
        assert error.batch_id == "batch_0003"
        assert error.cursor == "batch_0002"
        assert "batch_0003" in str(error)
        assert "request_counts" in str(error)
        rest = await client.list_batches(after=error.batch_id).to_list()
    assert ids(rest) == ["batch_0004", "batch_0005"]
    assert stream_tasks() == []


async def test_skip_invalid_logs_and_records_the_malformed_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With on_invalid="skip" the valid batches all arrive; the bad one is logged and recorded."""
    caplog.set_level(logging.DEBUG, logger="aiobatches")
    async with TinyServer(listing(with_bad_third())) as server, client_for(server) as client:
        stream = client.list_batches(on_invalid="skip")
        got = await stream.to_list()
    assert ids(got) == ["batch_0001", "batch_0002", "batch_0004", "batch_0005"]
    assert stream.skipped == ["batch_0003"]
    warnings = [
        record
        for record in caplog.records
        if record.name.startswith("aiobatches") and record.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1
    assert "batch_0003" in warnings[0].getMessage()
    assert "request_counts" in warnings[0].getMessage()


async def test_null_error_fields_read_as_absent() -> None:
    """The real shape `errors: {object: null, data: [{..., line: null, param: null}]}` lists."""
    errors = {
        "object": None,
        "data": [{"code": "x", "line": None, "message": "m", "param": None}],
    }
    items = [batch(1, status="failed", errors=errors), batch(2)]
    async with TinyServer(listing(items)) as server, client_for(server) as client:
        got = await client.list_batches().to_list()
    assert ids(got) == ["batch_0001", "batch_0002"]
    assert got[0].errors is not None
    [only] = got[0].errors.data
    assert (only.code, only.line, only.message, only.param) == ("x", None, "m", None)


# --- to_list() failing part way -------------------------------------------------------------------


@pytest.mark.parametrize("prefetch", [0, 2])
async def test_to_list_failure_carries_what_was_collected(prefetch: int) -> None:
    """A 400 on page 3 after pages 1-2: error.partial + after=error.cursor is the whole list."""
    async with FakeBatchesServer(count=45, faults={2: Fault.respond(400)}) as server:
        expected = [item["id"] for item in server.batches]
        async with client_for(server) as client:
            with pytest.raises(aiobatches.BadRequestError) as caught:
                await client.list_batches(limit=10, prefetch=prefetch).to_list()
            error = caught.value
            assert error.partial is not None
            assert ids(error.partial) == expected[:20]
            assert error.cursor == expected[19]
            rest = await client.list_batches(limit=10, after=error.cursor).to_list()
    assert ids(error.partial) + ids(rest) == expected


# --- numbers of any size --------------------------------------------------------------------------


async def test_timestamps_and_counts_of_any_size_stay_exact_ints() -> None:
    """created_at of 2**64 and counts of 2**70, written literally, arrive as exact ints."""
    huge = 2**70
    usage = {
        "input_tokens": huge,
        "input_tokens_details": {"cached_tokens": huge},
        "output_tokens": huge,
        "output_tokens_details": {"reasoning_tokens": huge},
        "total_tokens": 2 * huge,
    }
    item = batch(
        1,
        created_at=2**64,
        completed_at=2**64 + 1,
        request_counts={"total": huge, "completed": huge - 1, "failed": 1},
        usage=usage,
    )
    handler = listing([item])
    async with TinyServer(handler) as server, client_for(server) as client:
        [got] = await client.list_batches().to_list()
    assert b"18446744073709551616" in json_bytes(item)
    assert type(got.created_at) is int
    assert got.created_at == 2**64
    assert got.completed_at == 2**64 + 1
    assert got.request_counts is not None
    assert type(got.request_counts.total) is int
    assert (got.request_counts.total, got.request_counts.completed) == (huge, huge - 1)
    assert got.usage is not None
    assert got.usage.total_tokens == 2 * huge
    assert got.usage.input_tokens_details.cached_tokens == huge


# --- redaction ------------------------------------------------------------------------------------


def error_json(message: str, **extra: object) -> str:
    """An OpenAI-shaped 401 body."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return json.dumps({"error": {**error, **extra}})


async def test_one_character_key_does_not_mangle_messages() -> None:
    """With api_key="e", the server's words stay readable: no "***xp***cted"."""
    message = "Incorrect API key provided: e. The key was not in the expected format."
    faults = {0: Fault.respond(401, body=error_json(message))}
    async with (
        FakeBatchesServer(count=5, faults=faults) as server,
        aiobatches.Client(api_key="e", base_url=server.url) as client,
    ):
        with pytest.raises(aiobatches.AuthenticationError) as caught:
            await client.list_batches().to_list()
    text = str(caught.value)
    assert "expected" in text
    assert "format" in text
    assert "key" in text
    assert "***xp" not in text
    assert isinstance(caught.value.body, dict)
    assert "expected" in caught.value.body["message"]


LONG_KEY: Final = "sk-proj-hostile-0123456789abcdefXYZ"


async def test_long_key_is_redacted_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    """A long key echoed anywhere, even glued to other words, appears nowhere the user sees."""
    message = f"Incorrect API key provided: {LONG_KEY}. token={LONG_KEY}; x{LONG_KEY}y"
    body = error_json(message, param=LONG_KEY, detail={"given": [LONG_KEY, f"Bearer{LONG_KEY}"]})
    caplog.set_level(logging.DEBUG)
    async with (
        FakeBatchesServer(count=5, faults={0: Fault.respond(401, body=body)}) as server,
        aiobatches.Client(api_key=LONG_KEY, base_url=server.url) as client,
    ):
        with pytest.raises(aiobatches.AuthenticationError) as caught:
            await client.list_batches().to_list()
    error = caught.value
    seen = [
        str(error),
        repr(error),
        error.message,
        repr(error.body),
        repr(error.param),
        *traceback.format_exception(error),
    ]
    assert not [text for text in seen if LONG_KEY in text]
    assert "Incorrect API key provided" in str(error)
    assert caplog.records
    assert not [r for r in caplog.records if LONG_KEY in r.getMessage() or LONG_KEY in str(vars(r))]


# --- refused cross-origin redirect ----------------------------------------------------------------

NGINX_302: Final = (
    b"<html>\r\n<head><title>302 Found</title></head>\r\n<body>\r\n"
    b"<center><h1>302 Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


async def test_refused_cross_origin_redirect_names_its_status_once() -> None:
    """A 302 to another port is not followed; the error's message says "302" only once."""
    elsewhere = TinyServer(listing(batches(3)))
    async with elsewhere:

        async def redirect(_: web.Request) -> web.StreamResponse:
            location = elsewhere.url + "/batches"
            headers = {"Location": location, "Content-Type": "text/html"}
            return web.Response(status=302, body=NGINX_302, headers=headers)

        async with TinyServer(redirect) as server, client_for(server) as client:
            with pytest.raises(aiobatches.APIStatusError) as caught:
                await client.list_batches().to_list()
    assert caught.value.status_code == 302
    assert len(re.findall(r"\b302\b", str(caught.value))) == 1, str(caught.value)
    assert elsewhere.queries == []


async def test_key_as_a_json_object_key_is_redacted_and_numbers_kept() -> None:
    """A key echoed as an object key or inside a list is redacted; numbers beside it stay."""
    body = json.dumps(
        {"error": {"message": "denied", "seen": {LONG_KEY: [1, LONG_KEY, None, {"n": 2}]}}}
    )
    async with (
        FakeBatchesServer(count=5, faults={0: Fault.respond(401, body=body)}) as server,
        aiobatches.Client(api_key=LONG_KEY, base_url=server.url) as client,
    ):
        with pytest.raises(aiobatches.AuthenticationError) as caught:
            await client.list_batches().to_list()
    error_body = caught.value.body
    assert LONG_KEY not in repr(error_body)
    assert isinstance(error_body, dict)
    [(key, items)] = error_body["seen"].items()
    assert key == "***"
    assert items == [1, "***", None, {"n": 2}]


# --- bodies that cannot be decoded ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        (
            "application/json; charset=x-no-such-charset",
            b"{}",
            "unknown charset 'x-no-such-charset'",
        ),
        # 0x81 is one of the bytes windows-1252 leaves undefined
        ("application/json; charset=windows-1252", b'{"data": ["\x81"]}', "not valid windows-1252"),
    ],
    ids=["unknown charset", "invalid in its charset"],
)
async def test_page_that_cannot_be_decoded_is_a_validation_error(
    content_type: str, body: bytes, reason: str
) -> None:
    """A page in an unknown or violated charset is a validation error naming it, with the cursor."""

    async def undecodable(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type})

    async with TinyServer(after_first_page(undecodable)) as server, client_for(server) as client:
        with pytest.raises(aiobatches.APIResponseValidationError) as caught:
            await client.list_batches().to_list()
    assert reason in str(caught.value)
    assert caught.value.cursor == "batch_0002"


async def test_error_in_an_unknown_charset_still_reads_as_its_status() -> None:
    """A 500 declaring a charset nobody knows is still an InternalServerError with its message."""
    body = b'{"error": {"message": "upstream exploded", "type": "server_error"}}'

    async def failing(_: web.Request) -> web.StreamResponse:
        return web.Response(
            status=500, body=body, headers={"Content-Type": "application/json; charset=x-nope"}
        )

    async with TinyServer(failing) as server, client_for(server) as client:
        with pytest.raises(aiobatches.InternalServerError) as caught:
            await client.list_batches().to_list()
    assert "upstream exploded" in str(caught.value)


async def test_endless_same_origin_redirects_stop_after_ten() -> None:
    """Redirects to itself for ever end after 10 hops in an APIConnectionError, not retried."""

    async def again(request: web.Request) -> web.StreamResponse:
        hop = int(request.query.get("hop", "0"))
        raise web.HTTPFound(f"/v1/batches?hop={hop + 1}")

    async with TinyServer(again) as server, client_for(server, max_retries=2) as client:
        with pytest.raises(aiobatches.APIConnectionError) as caught:
            await client.list_batches().to_list()
    assert "more than 10 redirects" in str(caught.value)
    assert len(server.queries) == 11
