"""Every way a command can fail ends in one `aiobatches: ...` line and its exit code, never a
traceback: bad values, busy ports, full disks, closed streams, malformed batches, our own bugs."""

from __future__ import annotations

import asyncio
import errno
import io
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _helpers import API_KEY, COMMAND, MakeServer, RunCli, child_env

import aiobatches.testing
from aiobatches import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    NotFoundError,
)
from aiobatches._cli import main
from aiobatches._cli._main import describe
from aiobatches.testing import (
    FakeBatchesServer,
    Fault,
    FaultPlan,
    recorded_sleeps,
    synthetic_batches,
)

pytestmark = pytest.mark.server(count=10)
BAD_ID = "batch_bad\x1b[2J"


def lines(text: str) -> list[str]:
    return text.splitlines()


def raw_page(batches: list[Any]) -> bytes:
    """A one-page list body holding exactly these batches, encoded by the stdlib."""
    return json.dumps(
        {"object": "list", "data": batches, "first_id": None, "last_id": None, "has_more": False}
    ).encode()


def serving(server: FakeBatchesServer, body: bytes) -> None:
    """Make every page request of `server` answer `body`."""
    server.faults = FaultPlan(rate=1.0, pool=[Fault.respond(200, body=body)])


@pytest.fixture
def with_invalid_batch(server: FakeBatchesServer) -> list[str]:
    """Serve four batches, the third malformed; returns the ids of the valid ones."""
    batches = [dict(batch) for batch in synthetic_batches(4)]
    batches[2] = {**batches[2], "id": BAD_ID, "created_at": "yesterday"}
    serving(server, raw_page(batches))
    return [batches[0]["id"], batches[1]["id"], batches[3]["id"]]


def against(server: FakeBatchesServer, *args: str) -> tuple[str, ...]:
    """Arguments that point `list` at the fake server."""
    return ("list", "--base-url", server.url, "--api-key", API_KEY, *args)


def run_shell(redirect: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `aiobatches ARGS REDIRECT` as a shell would, e.g. with `>&-` closing stdout."""
    return subprocess.run(
        ["/bin/sh", "-c", f'exec "$@" {redirect}', "sh", *COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
        check=False,
    )


@pytest.mark.parametrize(
    "option",
    [
        "--created-after=inf",
        "--created-after=nan",
        "--created-after=1e400",
        "--created-before=-inf",
    ],
)
def test_times_that_are_no_moment_are_usage_errors(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An infinite, NaN or float-overflowing time exits 2 naming the option, with no data."""
    assert main(["list", "--demo", option]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    name = option.split("=", maxsplit=1)[0]
    assert f"argument {name}: expected a finite number of seconds" in err
    assert "Traceback" not in err


def test_huge_whole_seconds_are_exact_times(capsys: pytest.CaptureFixture[str]) -> None:
    """Whole seconds beyond any float or calendar are compared exactly, not rejected."""
    huge = str(10**40)
    assert main(["list", "--demo", "--created-before", huge, "--max-items", "2"]) == 0
    assert len(lines(capsys.readouterr().out)) == 2
    assert main(["list", "--demo", "--created-after", huge]) == 0
    assert capsys.readouterr().out == ""


NUMERIC_OPTIONS = [
    ("list", "--limit"),
    ("list", "--prefetch"),
    ("list", "--max-items"),
    ("list", "--created-after"),
    ("list", "--created-before"),
    ("wait", "--interval"),
    ("wait", "--timeout"),
    ("watch", "--since"),
    ("watch", "--interval"),
    ("serve", "--port"),
    ("serve", "--count"),
    ("serve", "--seed"),
    ("serve", "--latency-ms"),
    ("serve", "--speed"),
]
"""Every option of every command that takes a number."""
BEYOND = {
    "309 digits": "9" * 309,
    "-309 digits": "-" + "9" * 309,
    "5,000 digits": "9" * 5_000,
    "inf": "inf",
    "-inf": "-inf",
    "nan": "nan",
    "1e309": "1e309",
}
"""Numbers no float holds: whatever an option passes them to, they would overflow it."""


def no_server(*args: object, **kwargs: object) -> FakeBatchesServer:
    """Stands in for the fake server where none may start: a test failing here fails cleanly
    instead of filling memory with the batches of a huge `--count`."""
    raise AssertionError(f"a server was started with {args} {kwargs}")


@pytest.mark.parametrize("value", BEYOND.values(), ids=BEYOND.keys())
@pytest.mark.parametrize(("command", "option"), NUMERIC_OPTIONS)
def test_numbers_beyond_any_float_are_usage_errors_for_every_option(
    command: str,
    option: str,
    value: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """inf, nan, 1e309 or 309 digits, to any numeric option: exit 2 in one short line naming it."""
    monkeypatch.setattr(aiobatches.testing, "FakeBatchesServer", no_server)
    before = ["batch_a"] if command == "wait" else []
    source = [] if command == "serve" else ["--demo"]
    assert main([command, *before, *source, f"{option}={value}"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    last = err.splitlines()[-1]
    assert last.startswith(f"aiobatches {command}: error: argument {option}: ")
    assert len(last) < 200  # the value is quoted, not echoed whole
    assert "Traceback" not in err


def test_since_of_309_digits_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`watch --since` beyond any float exits 2 saying so, not "unexpected error" and 1."""
    assert main(["watch", "--demo", "--since", "9" * 309]) == 2
    err = capsys.readouterr().err
    assert "argument --since: expected a finite number of seconds, got '999" in err
    assert "(309 characters)" in err


def test_serve_count_beyond_100_000_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --count` above 100,000 exits 2 saying the range, instead of filling memory."""
    monkeypatch.setattr(aiobatches.testing, "FakeBatchesServer", no_server)
    assert main(["serve", "--count", "100001"]) == 2
    assert "argument --count: must be from 0 to 100000, got '100001'" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["70000", "65536", "-1"])
def test_port_out_of_range_is_a_usage_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`serve --port` outside 0..65535 exits 2 saying the range."""
    assert main(["serve", f"--port={port}"]) == 2
    err = capsys.readouterr().err
    assert "argument --port" in err
    assert "Traceback" not in err


def test_port_in_use_exits_1_naming_the_address(capsys: pytest.CaptureFixture[str]) -> None:
    """`serve` on a port another socket listens on exits 1 with one line naming host:port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"aiobatches: cannot serve on 127.0.0.1:{port}: {os.strerror(errno.EADDRINUSE)}\n"
    )


def test_host_that_cannot_be_resolved_exits_1_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    """`serve --host` with a name no resolver knows exits 1 with one line naming host:port."""
    assert main(["serve", "--host", "no such host"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    [line] = lines(err)
    assert line.startswith("aiobatches: cannot serve on no such host:0: ")
    assert line.removeprefix("aiobatches: cannot serve on no such host:0: ").strip()


async def test_unreachable_server_is_one_line_with_nothing_to_resume(cli: RunCli) -> None:
    """An unreachable server exits 1 after the retries: one line, no status, nothing to resume."""
    with socket.socket() as probe:  # a port that was free a moment ago, and is closed again
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with recorded_sleeps() as delays:
        code, out, err = await cli("list", "--base-url", f"http://127.0.0.1:{port}/v1",
                                   "--api-key", API_KEY)  # fmt: skip
    assert code == 1
    assert out == ""
    assert len(delays) == 2
    [line] = lines(err)
    assert line.startswith(
        f"aiobatches: listing batches failed: connection to http://127.0.0.1:{port}"
    )
    assert line.endswith("; nothing to resume")
    assert "status" not in line
    assert "request id" not in line


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [
        ("list", "--demo", "--format", "jsonl"),
        ("list", "--demo", "--format", "json"),
        ("list", "--demo", "--format", "csv"),
        ("list", "--demo", "--format", "table"),
    ],
)
def test_full_disk_is_one_line_and_exit_1(args: tuple[str, ...]) -> None:
    """Output to /dev/full exits 1 with one line, and nothing more when Python exits."""
    result = run_shell(">/dev/full", *args)
    assert result.returncode == 1
    assert result.stderr == f"aiobatches: cannot write output: {os.strerror(errno.ENOSPC)}\n"


@pytest.mark.parametrize("args", [("list", "--help"), ("--version",)])
def test_reader_gone_before_anything_was_written_ends_quietly(args: tuple[str, ...]) -> None:
    """`aiobatches --help | true`: a reader gone before any output means exit 0, no message."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*COMMAND, *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=child_env(),
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 0
    assert result.stderr == ""


async def test_text_the_output_encoding_cannot_hold_is_one_line(
    make_server: MakeServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stdout in Latin-1 and a model name in Chinese: one line naming the encoding, exit 1."""
    batches = [dict(batch) for batch in synthetic_batches(2)]
    batches[0]["metadata"] = {"team": "café"}  # Latin-1 holds it, whatever the seed drew
    batches[1]["model"] = "模型"
    latin = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    monkeypatch.setattr(sys, "stdout", latin)
    server = await make_server(batches, api_key=API_KEY)
    code, _, err = await cli(*against(server, "--prefetch", "0"))
    assert code == 1
    latin.seek(0)
    assert [json.loads(line)["id"] for line in latin] == [batches[0]["id"]]
    assert err == (
        "aiobatches: cannot write output: its encoding, latin-1, cannot hold '模';"
        " try PYTHONIOENCODING=utf-8\n"
    )


CLOSED = "aiobatches: stdout is closed; there is nowhere to write\n"


@pytest.mark.parametrize(
    ("redirect", "args", "code", "written", "said"),
    [
        (">&-", ("list", "--demo"), 1, "", CLOSED),
        (">&-", ("serve",), 1, "", CLOSED),
        (">&- 2>&-", ("list", "--demo"), 1, "", ""),
        ("2>&-", ("list", "--demo", "--max-items", "1"), 0, "batch_6beb9daa922c0210222dea85", ""),
        ("2>&-", ("list", "--demo", "--after", "batch_nope"), 1, "", ""),
        ("2>/dev/full", ("list", "--demo", "--after", "batch_nope"), 1, "", ""),
    ],
)
def test_closed_streams_end_without_a_traceback(
    redirect: str, args: tuple[str, ...], code: int, written: str, said: str
) -> None:
    """Closed stdout exits 1 (nowhere to write); a closed or full stderr only silences messages."""
    result = run_shell(redirect, *args)
    assert result.returncode == code
    assert [json.loads(line)["id"] for line in lines(result.stdout)] == lines(written)
    assert result.stderr == said


@pytest.mark.parametrize("bug", [RuntimeError, asyncio.CancelledError])
def test_unexpected_error_is_one_line_asking_for_a_report(
    bug: type[BaseException], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug of ours exits 1 with its type and message on one line, asking for a report."""

    async def broken(*_: object) -> int:
        raise bug("boom\nsecond line")

    monkeypatch.setattr("aiobatches._cli._list._write", broken)
    assert main(["list", "--demo"]) == 1
    assert capsys.readouterr().err == (
        f"aiobatches: unexpected error: {bug.__name__}: boom\\nsecond line (please report this)\n"
    )


def test_help_states_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` ends with what each exit code means."""
    assert main(["list", "--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    assert "2    usage error" in out
    assert "the\n       port cannot be bound" in out


async def test_invalid_batch_says_how_to_get_past_it(
    server: FakeBatchesServer, with_invalid_batch: list[str], cli: RunCli
) -> None:
    """The batches before a malformed one are written; the error resumes *after* that batch."""
    code, out, err = await cli(*against(server))
    assert code == 1
    assert [json.loads(line)["id"] for line in lines(out)] == with_invalid_batch[:2]
    [line] = lines(err)
    assert "resume with --after 'batch_bad\\x1b[2J' to skip past it" in line
    assert "--skip-invalid" in line


async def test_skip_invalid_warns_per_batch_and_counts_them(
    server: FakeBatchesServer, with_invalid_batch: list[str], cli: RunCli
) -> None:
    """--skip-invalid writes every valid batch, warns once per skipped one, then sums up."""
    handlers = list(logging.getLogger("aiobatches").handlers)
    code, out, err = await cli(*against(server, "--skip-invalid"))
    assert code == 0
    assert [json.loads(line)["id"] for line in lines(out)] == with_invalid_batch
    [warning, summary] = lines(err)
    assert warning.startswith("aiobatches: warning: ")
    assert "batch_bad" in warning
    assert "\x1b" not in warning
    assert summary == "aiobatches: skipped 1 invalid batch (see the warnings above)"
    assert logging.getLogger("aiobatches").handlers == handlers


async def test_proxy_option_sends_requests_through_the_proxy(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """--proxy routes the listing through that proxy (here the fake server, which answers)."""
    proxy = server.url.removesuffix("/v1")
    argv = ["list", "--base-url", "http://batches.invalid/v1", "--api-key", API_KEY]
    code, out, err = await cli(*argv, "--proxy", proxy, "--max-items", "3")
    assert code == 0
    assert err == ""
    assert [json.loads(line)["id"] for line in lines(out)] == [b["id"] for b in server.batches[:3]]
    assert server.page_requests[0].headers["Host"] == "batches.invalid"


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            NotFoundError("404 Not Found", status_code=404, request_id="req_1"),
            "waiting for batches failed: Not Found; status 404; request id req_1",
        ),
        (
            NotFoundError("404 Not Found: No batch found.", status_code=404),
            "waiting for batches failed: No batch found; status 404",
        ),
        (
            APIStatusError(
                "302 Found (a redirect to another origin is not followed)", status_code=302
            ),
            (
                "waiting for batches failed: Found (a redirect to another origin is not followed);"
                " status 302"
            ),
        ),
        (
            APIResponseValidationError("invalid response from x: not JSON.", request_id="req_2"),
            (
                "waiting for batches failed: invalid response from x: not JSON; status 200;"
                " request id req_2"
            ),
        ),
        (
            APIConnectionError("connection to x failed."),
            "waiting for batches failed: connection to x failed",
        ),
        (NotFoundError("404", status_code=404), "waiting for batches failed: 404; status 404"),
    ],
)
def test_an_error_line_says_the_reason_then_the_status_once(error: APIError, line: str) -> None:
    """The reason (not its status again, nor its full stop), then `status N; request id X`."""
    assert describe(error, "wait") == line
