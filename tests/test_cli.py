"""The `aiobatches` command against a real server: run in this process, as `main(argv)`, for
what it prints and returns, and as a real child process for what only a process shows: the
console script, a terminal, Ctrl-C and a reader that goes away."""

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
from pathlib import Path

import pytest
from _helpers import API_KEY, COMMAND, RunCli, child_env, read_pty, served_ids

import aiobatches
from aiobatches._cli import main
from aiobatches._cli._list import Selection, Taken
from aiobatches._cli._source import DEMO_KEY, DEMO_SPEED, living_server
from aiobatches.testing import FakeBatchesServer, Fault, ManualClock, synthetic_batches

pytestmark = pytest.mark.server(count=60)


def against(server: FakeBatchesServer, *args: str) -> tuple[str, ...]:
    """Arguments that point `list` at the fake server."""
    return ("list", "--base-url", server.url, "--api-key", API_KEY, *args)


def listed(out: str) -> list[str]:
    """The batch ids in JSON Lines output."""
    return [json.loads(line)["id"] for line in out.splitlines()]


# --- in this process --------------------------------------------------------------------------


async def test_piped_output_is_json_lines_of_every_batch(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """Piped, `list` writes every batch as one JSON object per line and nothing else."""
    code, out, err = await cli(*against(server))
    assert code == 0, err
    assert listed(out) == served_ids(server)
    assert err == ""


async def test_json_format_is_one_valid_array(server: FakeBatchesServer, cli: RunCli) -> None:
    """`--format json` writes a JSON array that parses back to the batches."""
    code, out, _ = await cli(*against(server, "--format", "json", "--max-items", "7"))
    assert code == 0
    parsed = json.loads(out)
    assert [batch["id"] for batch in parsed] == served_ids(server)[:7]
    assert parsed[0] == json.loads(json.dumps(server.batches[0]))


async def test_json_format_with_nothing_is_an_empty_array(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """An empty result is still valid JSON."""
    code, out, _ = await cli(*against(server, "--format", "json", "--status", "no-such"))
    assert code == 0
    assert json.loads(out) == []


async def test_csv_format_with_chosen_fields(server: FakeBatchesServer, cli: RunCli) -> None:
    """`--format csv --fields` writes a header and those columns, nested ones included."""
    fields = "id,status,request_counts.total,created_at,metadata"
    code, out, _ = await cli(*against(server, "--format", "csv", "--fields", fields))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == fields.split(",")
    assert [row["id"] for row in rows] == served_ids(server)
    first = server.batches[0]
    assert rows[0]["request_counts.total"] == str(first["request_counts"]["total"])
    assert rows[0]["created_at"] == str(first["created_at"])
    metadata = first["metadata"]  # compact JSON, its text as it is, as `jsonl` writes it
    assert rows[0]["metadata"] == (
        "" if metadata is None else json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
    )


async def test_table_format_fits_the_terminal(
    server: FakeBatchesServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--format table` has a header and one row per batch, each within COLUMNS=100."""
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = await cli(*against(server, "--format", "table", "--max-items", "5"))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "STATUS", "CREATED", "COUNTS"]
    assert len(lines) == 6
    assert all(len(line) <= 100 for line in lines)
    for line, batch in zip(lines[1:], server.batches, strict=False):
        assert line.startswith(batch["id"])
        assert batch["status"] in line


async def test_paging_options_reach_the_server(server: FakeBatchesServer, cli: RunCli) -> None:
    """--limit, --after, --prefetch and --max-items shape the requests."""
    after = served_ids(server)[4]
    code, out, _ = await cli(
        *against(server, "--limit", "10", "--after", after, "--prefetch", "0", "--max-items", "15")
    )
    assert code == 0
    assert listed(out) == served_ids(server)[5:20]
    queries = [request.query for request in server.page_requests]
    assert [query["limit"] for query in queries] == ["10", "5"]
    assert queries[0]["after"] == after


async def test_status_filter_is_repeatable_and_max_items_counts_after_it(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """--status twice keeps either status; --max-items counts only what is kept."""
    wanted = {"completed", "failed"}
    code, out, _ = await cli(
        *against(server, "--status", "completed", "--status", "failed", "--max-items", "6")
    )
    assert code == 0
    expected = [b["id"] for b in server.batches if b["status"] in wanted][:6]
    assert listed(out) == expected


async def test_created_after_stops_fetching_at_the_first_older_batch(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """--created-after keeps newer batches and requests no page past the first older one."""
    cutoff = server.batches[24]["created_at"]
    code, out, _ = await cli(
        *against(server, "--limit", "10", "--prefetch", "0", "--created-after", str(cutoff))
    )
    assert code == 0
    assert listed(out) == served_ids(server)[:25]
    assert len(server.page_requests) == 3


@pytest.mark.parametrize(
    "form",
    [
        "%Y-%m-%dT%H:%M:%S",  # no zone: UTC
        "%Y-%m-%dT%H:%M:%S+00:00",
        "%Y-%m-%dT%H:%M:%S+02:00",  # shifted by the zone it names
        "seconds",
        "fractional seconds",
    ],
)
async def test_created_before_takes_iso_times_and_seconds(
    server: FakeBatchesServer, cli: RunCli, form: str
) -> None:
    """--created-before takes ISO times (UTC unless zoned) or Unix seconds, even fractional."""
    cutoff = server.batches[9]["created_at"] + 1
    moment = datetime.datetime.fromtimestamp(cutoff, datetime.UTC)
    if form == "seconds":
        when = str(cutoff)
    elif form == "fractional seconds":
        when = f"{cutoff}.75"
    elif form.endswith("+02:00"):
        when = (moment + datetime.timedelta(hours=2)).strftime(form)
    else:
        when = moment.strftime(form)
    code, out, _ = await cli(*against(server, "--created-before", when))
    assert code == 0
    got = listed(out)
    assert got == [b["id"] for b in server.batches if b["created_at"] < cutoff]
    assert got[0] == served_ids(server)[9]


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
        ("--fields", ","),
        ("--base-url", "not a url"),
    ],
)
async def test_usage_errors_exit_2_with_nothing_on_stdout(
    server: FakeBatchesServer, cli: RunCli, args: tuple[str, ...]
) -> None:
    """A bad option or value exits 2, says what is wrong on stderr, and prints no data."""
    code, out, err = await cli(*against(server), *args)
    assert code == 2
    assert out == ""
    assert err.strip()
    assert "Traceback" not in err
    assert server.requests == []


async def test_missing_key_is_a_usage_error(cli: RunCli) -> None:
    """Without --api-key or OPENAI_API_KEY the command exits 2 naming the variable."""
    code, out, err = await cli("list", "--base-url", "http://127.0.0.1:9/v1")
    assert code == 2
    assert "OPENAI_API_KEY" in err
    assert out == ""


async def test_api_error_exits_1_with_one_clear_line(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """A failing page exits 1 with one line: what failed, status, request id, --after cursor."""
    server.faults = {1: Fault.respond(403)}
    code, out, err = await cli(*against(server, "--limit", "10"))
    assert code == 1
    assert len(out.splitlines()) == 10
    [line] = err.splitlines()
    assert "403" in line
    assert "request id req_" in line
    assert f"--after {served_ids(server)[9]}" in line
    assert API_KEY not in line


async def test_first_page_failing_says_there_is_nothing_to_resume(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """When the very first page fails there is no cursor: the line says so instead."""
    server.faults = {0: Fault.respond(400)}
    code, out, err = await cli(*against(server, "--limit", "10"))
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("aiobatches: listing batches failed: ")
    assert line.endswith("; nothing to resume")


async def test_wrong_key_is_never_echoed(server: FakeBatchesServer, cli: RunCli) -> None:
    """A rejected key does not appear in the error line."""
    wrong = "sk-this-is-the-wrong-key-123456"
    code, _, err = await cli("list", "--base-url", server.url, "--api-key", wrong)
    assert code == 1
    assert "401" in err
    assert wrong not in err


class FirstLineWatch(io.StringIO):
    """A stdout that notes how many pages the server had been asked for by the first flush
    that carries a line."""

    def __init__(self, server: FakeBatchesServer) -> None:
        super().__init__()
        self.server = server
        self.requests_at_first_line: int | None = None

    def flush(self) -> None:
        if self.requests_at_first_line is None and "\n" in self.getvalue():
            self.requests_at_first_line = len(self.server.page_requests)
        super().flush()


async def test_first_batch_is_printed_before_the_last_page_is_fetched(
    server: FakeBatchesServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output streams: the first page is flushed while later pages are still to be fetched."""
    watch = FirstLineWatch(server)
    monkeypatch.setattr(sys, "stdout", watch)
    code, _, _ = await cli(*against(server, "--limit", "10"))
    assert code == 0
    assert listed(watch.getvalue()) == served_ids(server)
    assert watch.requests_at_first_line is not None
    assert watch.requests_at_first_line < len(server.page_requests) == 6


async def test_demo_needs_no_key(cli: RunCli) -> None:
    """`list --demo --max-items 3` streams the living demo server's newest three, with no key."""
    code, out, err = await cli("list", "--demo", "--max-items", "3")
    assert code == 0, err
    demo = FakeBatchesServer(clock=ManualClock())  # the demo's history, as at its start
    assert listed(out) == [batch["id"] for batch in demo.batches[:3]]


async def test_max_items_zero_with_a_filter_writes_nothing(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """--max-items 0 means none, filtered or not."""
    code, out, _ = await cli(*against(server, "--status", "completed", "--max-items", "0"))
    assert code == 0
    assert out == ""


async def test_filtered_max_items_ending_a_page_requests_no_further_page(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """When the last wanted batch ends a page, no next page is requested."""
    end = next(i for i, b in enumerate(server.batches) if i >= 3 and b["status"] == "completed")
    wanted = [b["id"] for b in server.batches[: end + 1] if b["status"] == "completed"]
    code, out, _ = await cli(
        *against(server, "--limit", str(end + 1), "--prefetch", "0", "--status", "completed",
                 "--max-items", str(len(wanted)))
    )  # fmt: skip
    assert code == 0
    assert listed(out) == wanted
    assert len(server.page_requests) == 1


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`--version` prints the package version and exits 0."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"aiobatches {aiobatches.__version__}\n"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`aiobatches` alone exits 2 and names the commands it expects."""
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "COMMAND" in err


# --- as a child process -----------------------------------------------------------------------


def test_console_script_prints_the_version() -> None:
    """The installed `aiobatches` script runs the same program."""
    script = Path(sys.executable).parent / "aiobatches"
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"aiobatches {aiobatches.__version__}"


@pytest.mark.server(count=250)
async def test_reader_going_away_ends_quietly(server: FakeBatchesServer) -> None:
    """`| head -1`: once the reader leaves, listing stops and exits 0 without a traceback."""
    read_end, write_end = os.pipe()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *against(server, "--limit", "5"),
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(30):
            first = await loop.run_in_executor(None, reader.readline)
    async with asyncio.timeout(30):
        _, err = await process.communicate()
    assert json.loads(first)["id"] == served_ids(server)[0]
    assert process.returncode == 0
    assert err == b""
    assert len(server.page_requests) < 250 // 5


async def test_ctrl_c_exits_130_without_traceback(server: FakeBatchesServer) -> None:
    """SIGINT while listing exits 130, prints no traceback and leaves stdout clean."""
    server.latency = 5.0
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *against(server),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    async with asyncio.timeout(30):
        while not server.page_requests:
            await asyncio.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = await process.communicate()
    assert process.returncode == 130
    assert b"Traceback" not in err
    assert out == b""


async def test_terminal_gets_a_table_and_progress(server: FakeBatchesServer) -> None:
    """On a terminal, stdout shows the table and stderr a progress line (batches, pages)."""
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *against(server, "--limit", "20"),
        stdout=out_slave,
        stderr=err_slave,
        env=child_env(COLUMNS="100"),
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
    assert served_ids(server)[0] in screen
    assert "{" not in screen
    progress = err.decode()
    assert "60 batches, 3 pages" in progress


async def test_piped_stdout_stays_clean_when_stderr_is_a_terminal(
    server: FakeBatchesServer,
) -> None:
    """Progress goes to the terminal on stderr; the piped stdout holds only JSON Lines."""
    err_master, err_slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *against(server),
        stdout=asyncio.subprocess.PIPE,
        stderr=err_slave,
        env=child_env(),
    )
    os.close(err_slave)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(30):
        err, (out, _) = await asyncio.gather(
            loop.run_in_executor(None, read_pty, err_master), process.communicate()
        )
    os.close(err_master)
    assert process.returncode == 0
    assert listed(out.decode()) == served_ids(server)
    assert b"batches" in err


async def test_serve_runs_a_server_a_client_can_list() -> None:
    """`serve` prints its URL, tells a terminal how to stop, serves a client, ends on Ctrl-C."""
    err_master, err_slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "serve", "--count", "30", "--seed", "4", "--api-key", "sk-served", "--latency-ms", "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=err_slave,
        env=child_env(),
    )  # fmt: skip
    os.close(err_slave)
    assert process.stdout is not None
    loop = asyncio.get_running_loop()
    shown = loop.run_in_executor(None, read_pty, err_master)
    async with asyncio.timeout(30):
        url = (await process.stdout.readline()).decode().strip()
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        async with aiobatches.Client(api_key="sk-served", base_url=url) as client:
            got = await client.list_batches(limit=7).to_list()
        process.send_signal(signal.SIGINT)
        await process.wait()
        err = (await shown).decode()
    os.close(err_master)
    assert [batch.id for batch in got] == [b["id"] for b in synthetic_batches(30, seed=4)]
    assert process.returncode == 130  # interrupted, as every command is
    assert "serving; press Ctrl-C to stop" in err
    assert "Traceback" not in err


async def test_the_demo_server_records_no_request_log() -> None:
    """The embedded demo server counts requests but keeps no log that would grow for hours."""
    server = living_server(speed=DEMO_SPEED, arrivals=True, api_key=DEMO_KEY)
    async with server, aiobatches.Client(api_key=server.api_key, base_url=server.url) as client:
        await client.list_batches(max_items=3).to_list()
    assert (server.request_count, server.requests) == (1, [])


def listed_batch(number: int, status: str = "completed") -> aiobatches.Batch:
    """Batch `number`, created `number` seconds after 1,763,000,000 (a larger number is newer)."""
    return aiobatches.Batch(
        f"batch_{number}", "batch", "/v1/responses", "file-x", "24h", status, 1_763_000_000 + number
    )


def test_a_selection_decides_what_each_page_writes_and_when_the_listing_stops() -> None:
    """Per page: what the filters keep; done at --max-items or past --created-after."""
    page = [listed_batch(9), listed_batch(8, "failed"), listed_batch(7), listed_batch(6)]
    every = Selection()
    assert every.take(page, 0) == Taken(page, done=False)
    failed = Selection(statuses=frozenset({"failed"}))
    assert failed.take(page, 5) == Taken([page[1]], done=False)
    assert Selection(before=1_763_000_008).take(page, 0) == Taken(page[2:], done=False)
    recent = Selection(after=1_763_000_007)
    assert recent.take(page, 0) == Taken(page[:3], done=True)
    most = Selection(most=3)
    assert most.take(page, 1) == Taken(page[:2], done=True)
    assert most.take(page[:2], 1) == Taken(page[:2], done=True)
    assert most.take(page[:1], 1) == Taken(page[:1], done=False)
    assert Selection(most=0).take(page, 0) == Taken([], done=True)
    assert not every.filtered
    assert failed.filtered
    assert recent.filtered


async def test_an_api_error_line_says_each_thing_once(cli: RunCli) -> None:
    """An API error's line gives the server's reason, then its status once, then the request id."""
    code, out, err = await cli("wait", "--demo", "batch_a")
    assert (code, out) == (1, "")
    [line] = err.splitlines()
    assert line == (
        "aiobatches: waiting for batches failed: No batch found with id 'batch_a';"
        " status 404; request id req_00000000000000000000000000000001"
    )
    code, _, err = await cli("list", "--demo", "--after", "batch_nope")
    assert code == 1
    assert ".;" not in err
    assert err.count("400") == 1
