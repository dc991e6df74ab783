"""The `aiobatches` command, run as a person would: a real subprocess against a real server."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _helpers import API_KEY

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, synthetic_batches

COMMAND = (sys.executable, "-m", "aiobatches")
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
    "COLUMNS": "100",
}


@pytest.fixture
async def server() -> AsyncIterator[FakeBatchesServer]:
    """A fake endpoint of 60 batches that requires API_KEY."""
    async with FakeBatchesServer(count=60, api_key=API_KEY) as running:
        yield running


async def run(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run `aiobatches ARGS` to the end; exit code, stdout and stderr (the server keeps serving)."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def against(server: FakeBatchesServer, *args: str) -> tuple[str, ...]:
    """Arguments that point `list` at the fake server."""
    return ("list", "--base-url", server.url, "--api-key", API_KEY, *args)


def ids_of(server: FakeBatchesServer) -> list[str]:
    return [batch["id"] for batch in server.batches]


async def test_piped_output_is_json_lines_of_every_batch(server: FakeBatchesServer) -> None:
    """Piped, `list` writes every batch as one JSON object per line and nothing else."""
    code, out, err = await run(*against(server))
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == ids_of(server)
    assert err == ""


async def test_json_format_is_one_valid_array(server: FakeBatchesServer) -> None:
    """`--format json` writes a JSON array that parses back to the batches."""
    code, out, _ = await run(*against(server, "--format", "json", "--max-items", "7"))
    assert code == 0
    parsed = json.loads(out)
    assert [batch["id"] for batch in parsed] == ids_of(server)[:7]
    assert parsed[0] == json.loads(json.dumps(server.batches[0]))


async def test_json_format_with_nothing_is_an_empty_array(server: FakeBatchesServer) -> None:
    """An empty result is still valid JSON."""
    code, out, _ = await run(*against(server, "--format", "json", "--status", "no-such"))
    assert code == 0
    assert json.loads(out) == []


async def test_csv_format_with_chosen_fields(server: FakeBatchesServer) -> None:
    """`--format csv --fields` writes a header and those columns, nested ones included."""
    fields = "id,status,request_counts.total,created_at,metadata"
    code, out, _ = await run(*against(server, "--format", "csv", "--fields", fields))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == fields.split(",")
    assert [row["id"] for row in rows] == ids_of(server)
    first = server.batches[0]
    assert rows[0]["request_counts.total"] == str(first["request_counts"]["total"])
    assert rows[0]["created_at"] == str(first["created_at"])
    assert rows[0]["metadata"] == (
        "" if first["metadata"] is None else json.dumps(first["metadata"], separators=(",", ":"))
    )


async def test_table_format_fits_the_terminal(server: FakeBatchesServer) -> None:
    """`--format table` has a header and one row per batch, each within COLUMNS=100."""
    code, out, _ = await run(*against(server, "--format", "table", "--max-items", "5"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "STATUS", "CREATED", "COUNTS"]
    assert len(lines) == 6
    assert all(len(line) <= 100 for line in lines)
    for line, batch in zip(lines[1:], server.batches, strict=False):
        assert line.startswith(batch["id"])
        assert batch["status"] in line


async def test_paging_options_reach_the_server(server: FakeBatchesServer) -> None:
    """--limit, --after, --prefetch and --max-items shape the requests."""
    after = ids_of(server)[4]
    code, out, _ = await run(
        *against(server, "--limit", "10", "--after", after, "--prefetch", "0", "--max-items", "15")
    )
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == ids_of(server)[5:20]
    queries = [request.query for request in server.page_requests]
    assert [query["limit"] for query in queries] == ["10", "5"]
    assert queries[0]["after"] == after


async def test_status_filter_is_repeatable_and_max_items_counts_after_it(
    server: FakeBatchesServer,
) -> None:
    """--status twice keeps either status; --max-items counts only what is kept."""
    wanted = {"completed", "failed"}
    code, out, _ = await run(
        *against(server, "--status", "completed", "--status", "failed", "--max-items", "6")
    )
    assert code == 0
    got = [json.loads(line) for line in out.splitlines()]
    expected = [b["id"] for b in server.batches if b["status"] in wanted][:6]
    assert [batch["id"] for batch in got] == expected


async def test_created_after_stops_fetching_at_the_first_older_batch(
    server: FakeBatchesServer,
) -> None:
    """--created-after keeps newer batches and requests no page past the first older one."""
    cutoff = server.batches[24]["created_at"]
    code, out, _ = await run(
        *against(server, "--limit", "10", "--prefetch", "0", "--created-after", str(cutoff))
    )
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == ids_of(server)[:25]
    assert len(server.page_requests) == 3


async def test_created_before_and_iso_times(server: FakeBatchesServer) -> None:
    """--created-before filters by an ISO time (UTC when no zone is given)."""
    cutoff = server.batches[9]["created_at"] + 1
    iso = datetime.datetime.fromtimestamp(cutoff, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    code, out, _ = await run(*against(server, "--created-before", iso))
    assert code == 0
    got = [json.loads(line)["id"] for line in out.splitlines()]
    assert got == [b["id"] for b in server.batches if b["created_at"] < cutoff]
    assert got[0] == ids_of(server)[9]


@pytest.mark.parametrize(
    "args",
    [
        ("--limit", "500"),
        ("--limit", "0"),
        ("--prefetch", "-1"),
        ("--max-items", "many"),
        ("--created-after", "last tuesday"),
        ("--format", "xml"),
        ("--fields", "id,nope"),
        ("--base-url", "not a url"),
    ],
)
async def test_usage_errors_exit_2_with_nothing_on_stdout(
    server: FakeBatchesServer, args: tuple[str, ...]
) -> None:
    """A bad option or value exits 2, says what is wrong on stderr, and prints no data."""
    code, out, err = await run(*against(server), *args)
    assert code == 2
    assert out == ""
    assert err.strip()
    assert "Traceback" not in err


async def test_missing_key_is_a_usage_error() -> None:
    """Without --api-key or OPENAI_API_KEY the command exits 2 naming the variable."""
    code, out, err = await run("list", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2
    assert "OPENAI_API_KEY" in err
    assert out == ""


async def test_api_error_exits_1_with_one_clear_line(server: FakeBatchesServer) -> None:
    """A failing page exits 1 with one line: what failed, status, request id, --after cursor."""
    server.faults = {1: Fault.respond(403)}
    code, out, err = await run(*against(server, "--limit", "10", "--api-key", API_KEY))
    assert code == 1
    assert len(out.splitlines()) == 10
    [line] = err.splitlines()
    assert "403" in line
    assert "request id req_" in line
    assert f"--after {ids_of(server)[9]}" in line
    assert API_KEY not in line


async def test_wrong_key_is_never_echoed(server: FakeBatchesServer) -> None:
    """A rejected key does not appear in the error line."""
    wrong = "sk-this-is-the-wrong-key-123456"
    code, _, err = await run("list", "--base-url", server.url, "--api-key", wrong)
    assert code == 1
    assert "401" in err
    assert wrong not in err


async def test_first_batch_is_printed_before_the_last_page_is_fetched(
    server: FakeBatchesServer,
) -> None:
    """Output streams: the first line arrives while later pages are still to be fetched."""
    server.latency = 0.2
    process = await asyncio.create_subprocess_exec(
        *COMMAND, *against(server, "--limit", "10"), stdout=asyncio.subprocess.PIPE, env=ENV
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        first = await process.stdout.readline()
        assert json.loads(first)["id"] == ids_of(server)[0]
        assert len(server.page_requests) < 6
        await process.communicate()
    assert process.returncode == 0


async def test_broken_pipe_ends_quietly(server: FakeBatchesServer) -> None:
    """`| head -1`: the reader closes early; the command exits 0 without a traceback."""
    server.latency = 0.05
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *against(server, "--limit", "5"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    async with asyncio.timeout(30):
        await process.stdout.readline()
        transport = process._transport  # type: ignore[attr-defined]
        transport.get_pipe_transport(1).close()
        err = await process.stderr.read()
        await process.wait()
    assert process.returncode == 0
    assert err == b""


async def test_ctrl_c_exits_130_without_traceback(server: FakeBatchesServer) -> None:
    """SIGINT while listing exits 130, prints no traceback and leaves stdout clean."""
    server.latency = 5.0
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *against(server),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    async with asyncio.timeout(30):
        while not server.page_requests:
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = await process.communicate()
    assert process.returncode == 130
    assert b"Traceback" not in err
    assert out == b""


def read_pty(fd: int) -> bytes:
    """Everything a pseudo-terminal shows until its other end closes."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_terminal_gets_a_table_and_progress(server: FakeBatchesServer) -> None:
    """On a terminal, stdout shows the table and stderr a progress line (batches, pages)."""
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *COMMAND, *against(server, "--limit", "20"), stdout=out_slave, stderr=err_slave, env=ENV
    )
    os.close(out_slave)
    os.close(err_slave)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(30):
        out, err = await asyncio.gather(
            loop.run_in_executor(None, read_pty, out_master),
            loop.run_in_executor(None, read_pty, err_master),
        )
        await process.wait()
    os.close(out_master)
    os.close(err_master)
    assert process.returncode == 0
    screen = out.decode()
    assert "ID" in screen.splitlines()[0]
    assert "STATUS" in screen.splitlines()[0]
    assert ids_of(server)[0] in screen
    assert "{" not in screen
    progress = err.decode()
    assert "60 batches, 3 pages" in progress


async def test_piped_stdout_stays_clean_when_stderr_is_a_terminal(
    server: FakeBatchesServer,
) -> None:
    """Progress goes to the terminal on stderr; the piped stdout holds only JSON Lines."""
    err_master, err_slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *COMMAND, *against(server), stdout=asyncio.subprocess.PIPE, stderr=err_slave, env=ENV
    )
    os.close(err_slave)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(30):
        err, (out, _) = await asyncio.gather(
            loop.run_in_executor(None, read_pty, err_master), process.communicate()
        )
    os.close(err_master)
    assert process.returncode == 0
    assert [json.loads(line)["id"] for line in out.decode().splitlines()] == ids_of(server)
    assert b"batches" in err


async def test_serve_runs_a_server_a_client_can_list() -> None:
    """`aiobatches serve` prints its URL, serves seeded batches to a real client, stops on ^C."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "serve", "--count", "30", "--seed", "4", "--api-key", "sk-served", "--latency-ms", "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )  # fmt: skip
    assert process.stdout is not None
    async with asyncio.timeout(30):
        url = (await process.stdout.readline()).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        async with aiobatches.Client(api_key="sk-served", base_url=url) as client:
            got = await client.list_batches(limit=7).to_list()
        process.send_signal(signal.SIGINT)
        _, err = await process.communicate()
    assert [batch.id for batch in got] == [b["id"] for b in synthetic_batches(30, seed=4)]
    assert process.returncode == 0
    assert b"Traceback" not in err


def test_console_script_and_version() -> None:
    """The installed `aiobatches` script prints the package version."""
    script = Path(sys.executable).parent / "aiobatches"
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"aiobatches {aiobatches.__version__}"


async def test_demo_needs_no_key() -> None:
    """`list --demo --max-items 3` streams three synthetic batches with no key configured."""
    code, out, err = await run("list", "--demo", "--max-items", "3")
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == [
        batch["id"] for batch in synthetic_batches(3)
    ]


async def test_max_items_zero_with_a_filter_writes_nothing(server: FakeBatchesServer) -> None:
    """--max-items 0 means none, filtered or not."""
    code, out, _ = await run(*against(server, "--status", "completed", "--max-items", "0"))
    assert code == 0
    assert out == ""


async def test_filtered_max_items_ending_a_page_requests_no_further_page(
    server: FakeBatchesServer,
) -> None:
    """When the last wanted batch ends a page, no next page is requested."""
    end = next(i for i, b in enumerate(server.batches) if i >= 3 and b["status"] == "completed")
    wanted = [b["id"] for b in server.batches[: end + 1] if b["status"] == "completed"]
    code, out, _ = await run(
        *against(server, "--limit", str(end + 1), "--prefetch", "0", "--status", "completed",
                 "--max-items", str(len(wanted)))
    )  # fmt: skip
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == wanted
    assert len(server.page_requests) == 1
