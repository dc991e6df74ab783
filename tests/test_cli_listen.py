"""`aiobatches watch --listen HOST:PORT`: OpenAI's webhooks received in the watch's own
process, over real HTTP. A verified one has its batch retrieved at once (200); anything
unverified is 400 saying no more, a body over 1 MiB 413, a body that never comes 408,
another method 405; the secret comes only from the environment."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import socket
from collections.abc import AsyncIterator
from typing import Any, Final

import aiohttp
import orjson
import pytest
import yarl
from _helpers import COMMAND, RunCli, child_env, eventually
from _scripted import KEY, ScriptedServer, batch

from aiobatches import _webhooks
from aiobatches._cli import _listen, _main, _options, _watch
from aiobatches._cli._board import Board
from aiobatches._cli._common import CommandError
from aiobatches._cli._layout import Glyphs, render
from aiobatches._site import Bounds
from aiobatches.testing import sign_webhook

SECRET: Final = "whsec_" + "c2VjcmV0IG9mIHRoZSBsaXN0ZW5lciB0ZXN0cw=="
OTHER_SECRET: Final = "whsec_" + "YW5vdGhlciBlbmRwb2ludCdzIHNlY3JldA=="
MiB: Final = 1024 * 1024


def free_port() -> int:
    """A port free on 127.0.0.1 a moment ago, for a listener the test must know the URL of."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def event_body(batch_id: str, kind: str = "batch.completed") -> bytes:
    """An event as OpenAI sends it: the body carries only the batch id."""
    event = {
        "id": "evt_685343a1381c819085d44c354e1b330e",
        "object": "event",
        "type": kind,
        "created_at": 1_763_000_100,
        "data": {"id": batch_id},
    }
    return orjson.dumps(event)


class Watching:
    """`aiobatches watch --listen` of a scripted server, run in this loop; what it prints."""

    def __init__(self, server: ScriptedServer, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = ["watch", "--base-url", server.url, "--api-key", KEY]
        self.args = _main._parse([*argv, "--listen", f"127.0.0.1:{self.port}", *args])
        self.out = io.StringIO()
        self.task: asyncio.Task[int] | None = None

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    async def printed(self, count: int) -> list[dict[str, Any]]:
        """The first `count` events, once printed (a hang guard, not a timing)."""
        async with asyncio.timeout(30):
            while len(self.lines()) < count:
                await asyncio.sleep(0.01)
        return self.lines()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Watching]:
        """The command running until the block ends, then cancelled as SIGTERM does."""
        self.task = asyncio.get_running_loop().create_task(
            _watch.COMMAND.run(self.args, self.out, None)
        )
        try:
            yield self
        finally:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status, await r.text()


async def raw_exchange(port: int, request: bytes, *, wait: float = 30) -> bytes:
    """Send `request` as it is over TCP and read the answer's status line and headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(wait):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", SECRET)
    return SECRET


async def test_a_verified_webhook_has_its_batch_retrieved_at_once(secret: str) -> None:
    """Resting for ten minutes (the default with --listen), the watch is woken by a signed
    webhook on any path: it retrieves that one batch, lists nothing, and prints its finish."""
    async with ScriptedServer([batch(0, "in_progress"), batch(1, "in_progress")]) as server:
        watching = Watching(server)
        async with watching.running():
            assert [e["kind"] for e in await watching.printed(2)] == ["existing"] * 2
            lists = len(server.lists)
            server.batches[1]["status"] = "completed"
            body = event_body("batch_000001")
            status, text = await post(
                f"{watching.url}/hooks/openai?x=1", body, sign_webhook(body, secret)
            )
            assert (status, text) == (200, "ok\n")
            told = (await watching.printed(3))[2]
            assert (told["kind"], told["batch"]["id"], told["finished"]) == (
                "updated",
                "batch_000001",
                True,
            )
            assert (len(server.lists), server.retrievals) == (lists, ["batch_000001"])
            # Another kind of event, verified: accepted, and nothing to retrieve.
            other = event_body("batch_000000", kind="response.completed")
            assert (await post(watching.url, other, sign_webhook(other, secret)))[0] == 200
            assert server.retrievals == ["batch_000001"]
    with socket.socket() as again:  # the port is given back when the command ends
        again.bind(("127.0.0.1", watching.port))


async def test_every_unverified_request_is_refused_saying_nothing_of_why(
    secret: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another secret's signature, a stale one, a tampered body, no headers, a GET: each is
    refused (400 with the same two words, 405 naming POST), retrieves nothing, and is told
    to the operator once per quiet spell, never showing a signature or the secret."""
    monkeypatch.setattr(_listen, "QUIET", 3600.0)
    body = event_body("batch_000000")
    forged = sign_webhook(body, OTHER_SECRET)
    stale = _webhooks.sign_headers(body, secret, msg_id="msg_1", timestamp=1_000_000_000)
    tampered = event_body("batch_000001")
    async with ScriptedServer([batch(0, "in_progress"), batch(1, "in_progress")]) as server:
        watching = Watching(server)
        async with watching.running():
            await watching.printed(2)
            for sent, headers in (
                (body, forged),
                (body, stale),
                (tampered, sign_webhook(body, secret)),
                (body, {}),
            ):
                assert await post(f"{watching.url}/x", sent, headers) == (400, "invalid webhook\n")
            async with aiohttp.ClientSession() as session, session.get(watching.url) as got:
                assert (got.status, got.headers["Allow"]) == (405, "POST")
            monkeypatch.setattr(_listen, "QUIET", 0.0)
            assert (await post(watching.url, body, forged))[0] == 400
            assert server.retrievals == []
            assert len(watching.lines()) == 2
    err = capsys.readouterr().err
    reports = [line for line in err.splitlines() if "refused" in line]
    assert len(reports) == 3, err
    assert reports[0].startswith("aiobatches: warning: refused an unverified webhook (")
    # The quiet spell's count is told before the next report, with the latest held back.
    assert reports[1].startswith("aiobatches: warning: 4 more since the last report;")
    assert reports[1].endswith(
        "the latest: refused a GET request on " + watching.url + "/: answered 405"
    )
    assert reports[2].startswith("aiobatches: warning: refused an unverified webhook (")
    for shown in (secret.removeprefix("whsec_"), OTHER_SECRET.removeprefix("whsec_")):
        assert shown not in err
    for headers in (forged, stale):
        assert headers["webhook-signature"].removeprefix("v1,") not in err


async def test_a_body_over_one_mib_is_413_and_one_of_exactly_one_mib_is_verified(
    secret: str,
) -> None:
    """A declared length over 1 MiB is refused before a byte of the body is read; a chunked
    body is refused once it passes 1 MiB; a signed event padded to exactly 1 MiB verifies."""
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        watching = Watching(server)
        async with watching.running():
            await watching.printed(1)
            declared = f"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {5 * MiB}\r\n\r\n".encode()
            assert (await raw_exchange(watching.port, declared)).startswith(b"HTTP/1.1 413 ")
            chunk = b"x" * 65_536
            chunked = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            chunked += (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (MiB // len(chunk) + 1)
            assert (await raw_exchange(watching.port, chunked)).startswith(b"HTTP/1.1 413 ")
            event = event_body("batch_000000")
            whole = event + b" " * (MiB - len(event))
            assert (await post(watching.url, whole, sign_webhook(whole, secret)))[0] == 200
            assert await eventually(lambda: server.retrievals == ["batch_000000"])


async def test_a_body_that_does_not_come_is_408_within_the_read_timeout(
    secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender that declares a body and trickles part of it holds the request no longer
    than READ_TIMEOUT: it is answered 408 and nothing is retrieved."""
    del secret
    monkeypatch.setattr(_listen, "READ_TIMEOUT", 0.2)
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        watching = Watching(server)
        async with watching.running():
            await watching.printed(1)
            partial = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
            assert (await raw_exchange(watching.port, partial, wait=10)).startswith(
                b"HTTP/1.1 408 "
            )
            assert server.retrievals == []


@pytest.mark.parametrize("environment", [None, "", "whsec_not base64!"])
async def test_without_a_good_secret_in_the_environment_it_exits_2_before_listening(
    environment: str | None, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The secret is never a flag: none in OPENAI_WEBHOOK_SECRET, or a malformed one, is a
    usage error that names the variable and does not show what it holds; nothing is bound."""
    if environment is None:
        monkeypatch.delenv("OPENAI_WEBHOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", environment)
    port = free_port()
    code, out, err = await cli(
        "watch", "--api-key", KEY, "--base-url", "http://127.0.0.1:9/v1",
        "--listen", f"127.0.0.1:{port}",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "OPENAI_WEBHOOK_SECRET" in err
    assert "not base64" not in err
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))


async def test_there_is_no_flag_for_the_secret(cli: RunCli) -> None:
    code, _, err = await cli("watch", "--demo", "--listen", "127.0.0.1:0", "--webhook-secret", "x")
    assert code == 2
    assert "unrecognized arguments" in err


async def test_a_port_in_use_is_exit_1_naming_it(secret: str, cli: RunCli) -> None:
    del secret
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await cli("watch", "--demo", "--listen", f"127.0.0.1:{port}")
    assert (code, out) == (1, "")
    assert f"cannot listen on 127.0.0.1:{port}: " in err


@pytest.mark.parametrize(
    ("raw", "address"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:65535", ("::1", 65535)),
        ("0.0.0.0:443", ("0.0.0.0", 443)),  # noqa: S104 - an address to parse, not bound
    ],
)
def test_listen_takes_host_colon_port(raw: str, address: tuple[str, int]) -> None:
    assert _options.address(raw) == address


@pytest.mark.parametrize(
    "raw",
    ["8080", ":8080", "host:", "host:65536", "host:-1", "host:8o", "::1:80", "host:\uff18\uff10",
     "ho\x1bst:80", "[]:80", " host:80"],
)  # fmt: skip
def test_listen_refuses_what_is_not_host_colon_port(
    raw: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _main._parse(["watch", "--demo", "--listen", raw])
    assert exited.value.code == 2
    assert "argument --listen: expected " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "interval"),
    [
        ([], _options.INTERVAL),
        (["--listen", "127.0.0.1:0"], _options.LISTEN_INTERVAL),
        (["--demo", "--listen", "127.0.0.1:0"], _options.LISTEN_INTERVAL),
        (["--listen", "127.0.0.1:0", "--interval", "30"], 30.0),
    ],
)
def test_with_listen_the_polls_only_reconcile_every_ten_minutes(
    options: list[str], interval: float
) -> None:
    assert _options.LISTEN_INTERVAL == 600
    assert _options.interval(_main._parse(["watch", *options])) == interval


async def test_a_listener_on_every_address_is_reached_over_loopback_by_the_demo() -> None:
    """Bound to 0.0.0.0, the listener tells a sender on this machine a loopback URL, and an
    event posted there is heard; before a watch is given to wake, none is woken."""
    heard: list[str] = []

    def refused(line: str) -> None:
        raise AssertionError(line)

    everywhere = _listen.Listener(
        "0.0.0.0",  # noqa: S104 - every address, as a server behind no proxy listens
        0,
        SECRET,
        heard=lambda event: heard.append(event.id),
        refused=refused,
    )
    async with everywhere:
        assert everywhere.tally.url.startswith("http://0.0.0.0:")
        assert everywhere.push_url.startswith("http://127.0.0.1:")
        body = event_body("batch_000000")
        assert await post(everywhere.push_url, body, sign_webhook(body, SECRET)) == (200, "ok\n")
    assert (heard, everywhere.tally.received) == (["evt_685343a1381c819085d44c354e1b330e"], 1)


def test_the_table_header_counts_webhooks_and_refusals() -> None:
    board = Board()
    board.webhooks = _listen.Tally("http://127.0.0.1:8080/", received=12, refused=3)
    header = "".join(
        text
        for text, _ in render(board, 200, 10, interval=600, glyphs=Glyphs.for_encoding("utf-8"))[0]
    )
    assert "12 webhooks at http://127.0.0.1:8080/ (3 refused)" in header


async def test_the_demo_pushes_webhooks_to_its_own_listener_and_ends_143() -> None:
    """`watch --demo --listen` in a child process: with polls ten minutes apart, a batch
    that finishes is printed all the same, for the demo server pushed it; SIGTERM ends it
    with 143, quietly."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "watch", "--demo", "--listen", "127.0.0.1:0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=child_env(),
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            while True:
                event = json.loads(await process.stdout.readline())
                if event["kind"] != "existing":
                    break
        assert event["finished"] is True
    finally:
        process.terminate()
        async with asyncio.timeout(30):
            _, err = await process.communicate()
    assert process.returncode == 143
    assert err == b""


async def test_the_table_shows_what_the_listener_hears_and_refuses_not_stderr(
    secret: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the table, the header counts the webhooks heard and a refusal is the warning
    line: nothing goes to stderr, where it would scroll the table away."""
    monkeypatch.setenv("COLUMNS", "200")
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        watching = Watching(server, "--format", "table")
        async with watching.running():
            async with asyncio.timeout(30):
                while "0 webhooks at " not in watching.out.getvalue():
                    await asyncio.sleep(0.01)
            body = event_body("batch_000000")
            assert (await post(watching.url, body, sign_webhook(body, secret)))[0] == 200
            assert (await post(watching.url, body, {}))[0] == 400
            async with asyncio.timeout(30):
                while "refused an unverified webhook" not in watching.out.getvalue():
                    await asyncio.sleep(0.01)
            frame = watching.out.getvalue().split("\n\n")[-2]
            assert f"1 webhook at {watching.url}/ (1 refused)" in frame
    assert capsys.readouterr().err == ""


async def test_the_end_of_a_burst_of_refusals_is_told_once_the_quiet_spell_is_over(
    secret: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refusals after a report are counted, and told when the quiet spell ends even if
    nothing more comes; a sender that leaves midway through its body is refused too."""
    del secret
    monkeypatch.setattr(_listen, "QUIET", 0.3)
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        watching = Watching(server)
        async with watching.running():
            await watching.printed(1)
            async with aiohttp.ClientSession() as session:
                for _ in range(3):
                    async with session.get(watching.url) as got:
                        assert got.status == 405
            _, writer = await asyncio.open_connection("127.0.0.1", watching.port)
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            await writer.drain()
            writer.close()  # gone before the rest of its body
            await writer.wait_closed()
            async with asyncio.timeout(30):
                while "the latest: refused a body cut short" not in capsys.readouterr().err:
                    await asyncio.sleep(0.05)
    assert "Traceback" not in capsys.readouterr().err


async def test_what_aiohttp_and_asyncio_log_while_listening_is_a_line_not_a_traceback(
    secret: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed request (a length and a chunked body at once, headers too long) makes
    aiohttp log an error: the operator gets one rate-limited line, never its traceback."""
    del secret
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        watching = Watching(server)
        async with watching.running():
            await watching.printed(1)
            smuggled = (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            for _ in range(20):
                assert b" 400 " in (await raw_exchange(watching.port, smuggled))
            huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
            assert b" 4" in (await raw_exchange(watching.port, huge)).partition(b"\r\n")[0]
            assert server.retrievals == []
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert 1 <= len(err.splitlines()) <= 3, err


async def test_connections_beyond_the_bound_are_closed_newest_first(
    secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Senders that open connections and never finish their headers hold at most the
    bound: the newest beyond it are closed, and the listener still takes webhooks."""
    del secret
    monkeypatch.setattr(_listen, "BOUNDS", Bounds(connections=3, lifetime=600.0))
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        watching = Watching(server)
        async with watching.running():
            await watching.printed(1)
            held = []
            for _ in range(6):
                reader, writer = await asyncio.open_connection("127.0.0.1", watching.port)
                writer.write(b"POST / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
                await writer.drain()
                held.append((reader, writer))
                await asyncio.sleep(0.01)  # opened one after another: an order to go by
            async with asyncio.timeout(30):  # a hang guard: the guard looks every second
                for reader, _ in held[3:]:
                    assert await reader.read() == b""
            assert not any(reader.at_eof() for reader, _ in held[:3])
            for _, writer in held:
                writer.close()
            body = event_body("batch_000000")
            assert (await post(watching.url, body, sign_webhook(body, SECRET)))[0] == 200


async def test_a_sender_trickling_its_headers_is_cut_off_at_the_lifetime(
    secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One byte of headers now and then keeps no connection open past the lifetime."""
    del secret
    monkeypatch.setattr(_listen, "BOUNDS", Bounds(connections=32, lifetime=1.0))
    async with ScriptedServer([batch(0, "in_progress")]) as server:
        watching = Watching(server)
        async with watching.running():
            await watching.printed(1)
            reader, writer = await asyncio.open_connection("127.0.0.1", watching.port)
            trickled = 0
            async with asyncio.timeout(30):  # a hang guard, not a timing
                try:
                    for byte in itertools.cycle(b"POST / HTTP/1.1\r\nX-Slow: aaaa"):
                        writer.write(bytes([byte]))
                        await writer.drain()
                        trickled += 1
                        if reader.at_eof():
                            break
                        await asyncio.sleep(0.1)
                except ConnectionError:
                    pass  # closed while writing: cut off
            writer.close()
            assert trickled < 290  # cut off long before the guard's half minute


async def test_a_listener_on_every_ipv6_address_is_reached_over_ipv6_loopback() -> None:
    """Bound to `::` (asyncio listens there for IPv6 only), the listener tells a sender on
    this machine IPv6's loopback, where an event posted is heard."""
    heard: list[str] = []

    def refused(line: str) -> None:
        raise AssertionError(line)

    everywhere = _listen.Listener(
        "::", 0, SECRET, heard=lambda event: heard.append(event.id), refused=refused
    )
    try:
        await everywhere.__aenter__()
    except CommandError:
        pytest.skip("this machine has no IPv6")
    try:
        assert everywhere.push_url.startswith("http://[::1]:")
        body = event_body("batch_000000")
        assert (await post(everywhere.push_url, body, sign_webhook(body, SECRET)))[0] == 200
    finally:
        await everywhere.__aexit__(None, None, None)
    assert heard == ["evt_685343a1381c819085d44c354e1b330e"]


async def test_serve_tells_a_malformed_request_as_a_line_not_a_traceback() -> None:
    """`serve` is open to anyone too: what aiohttp logs of malformed requests reaches its
    stderr as warning lines, rate-limited, the rest counted at the end; no traceback."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "serve", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=child_env(),
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            url = yarl.URL((await process.stdout.readline()).decode().strip())
        assert url.port is not None
        smuggled = (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(5):
            assert b" 400 " in await raw_exchange(url.port, smuggled)
    finally:
        process.terminate()
        async with asyncio.timeout(30):
            _, err = await process.communicate()
    lines = err.decode().splitlines()
    assert "Traceback" not in err.decode()
    assert lines[0].startswith("aiobatches: warning: aiohttp.server: ")
    assert lines[-1].startswith("aiobatches: warning: 4 more since the last report; ")
