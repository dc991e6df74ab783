"""`aiobatches --provider anthropic`: Message Batches listed, waited for and watched in every
format, against the fake server's Anthropic side, with the exit-3 rule of a Message Batch."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
import os
import pty
import signal
from typing import Any

import pytest
from _helpers import API_KEY, COMMAND, MakeServer, RunCli, child_env, read_pty
from _scripted import NOW, make_batch

import aiobatches
from aiobatches._cli._board import Board
from aiobatches._cli._layout import Glyphs, render
from aiobatches._converter import unstructure_batch
from aiobatches.testing import FakeBatchesServer

GLYPHS = Glyphs.for_encoding("utf-8")
_EVENTS = (
    "in_progress_at", "finalizing_at", "completed_at", "failed_at", "expired_at",
    "cancelling_at", "cancelled_at",
)  # fmt: skip


@pytest.fixture(autouse=True)
def no_anthropic_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Anthropic key or URL from the developer's environment reaches a test."""
    for name in list(os.environ):
        if name.upper().startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)


@pytest.fixture
async def anthropic(make_server: MakeServer) -> FakeBatchesServer:
    """40 seeded batches requiring API_KEY, served as Message Batches too."""
    return await make_server(count=40, api_key=API_KEY)


def against(server: FakeBatchesServer, command: str, *args: str) -> tuple[str, ...]:
    """`command` pointed at the server's Anthropic side."""
    return (
        command, "--provider", "anthropic", "--base-url", server.anthropic_url,
        "--api-key", API_KEY, *args,
    )  # fmt: skip


async def served(server: FakeBatchesServer) -> list[aiobatches.MessageBatch]:
    """Every Message Batch the server holds, newest first, as the library lists them."""
    async with aiobatches.AnthropicClient(API_KEY, base_url=server.anthropic_url) as client:
        return await client.list_batches().to_list()


def held(index: int, status: str, *, done: int = 0, failed: int = 0, **stamps: int) -> Any:
    """An OpenAI-shaped batch the fake serves as a Message Batch: `status`, with `done`
    and `failed` of its 1,000 requests, and only the time stamps given."""
    batch = make_batch(index, status=status, created_at=NOW - 60 * index, done=done)
    batch["request_counts"]["failed"] = failed
    batch.update(dict.fromkeys(_EVENTS), **stamps)
    return batch


# --- list ---------------------------------------------------------------------------------


async def test_jsonl_is_every_message_batch_exactly(
    anthropic: FakeBatchesServer, cli: RunCli
) -> None:
    """Piped, each line is the Message Batch as the library reads it, times in RFC 3339."""
    code, out, err = await cli(*against(anthropic, "list"))
    assert (code, err) == (0, "")
    expected = [unstructure_batch(batch) for batch in await served(anthropic)]
    assert [json.loads(line) for line in out.splitlines()] == expected
    assert expected[0]["created_at"].endswith("Z")
    assert expected[0]["type"] == "message_batch"


async def test_pages_of_up_to_1000_for_anthropic_only(
    anthropic: FakeBatchesServer, cli: RunCli
) -> None:
    """`--limit` takes Anthropic's 1,000 with its provider, and stays 1-100 for OpenAI's."""
    code, out, _ = await cli(*against(anthropic, "list", "--limit", "1000", "--max-items", "3"))
    assert (code, len(out.splitlines())) == (0, 3)
    pages = [r for r in anthropic.requests if r.path == "/v1/messages/batches"]
    assert [r.query["limit"] for r in pages] == ["3"]  # only as many as still wanted
    code, out, err = await cli("list", "--demo", "--limit", "1000")
    assert (code, out) == (2, "")
    assert "--limit: openai's pages hold 1 to 100 batches, got 1,000" in err
    code, _, err = await cli("list", "--demo", "--provider", "anthropic", "--limit", "1001")
    assert code == 2
    assert "--limit" in err


async def test_json_is_one_array_of_message_batches(
    anthropic: FakeBatchesServer, cli: RunCli
) -> None:
    """`--format json` writes an array of the same objects."""
    code, out, _ = await cli(*against(anthropic, "list", "--format", "json", "--max-items", "4"))
    assert code == 0
    expected = [unstructure_batch(batch) for batch in await served(anthropic)]
    assert json.loads(out) == expected[:4]


async def test_csv_has_message_batch_columns(anthropic: FakeBatchesServer, cli: RunCli) -> None:
    """csv's default columns are a Message Batch's fields, counts by state."""
    code, out, _ = await cli(*against(anthropic, "list", "--format", "csv"))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    batches = await served(anthropic)
    assert list(rows[0])[:3] == ["id", "type", "processing_status"]
    for row, batch in zip(rows, batches, strict=True):
        exact = unstructure_batch(batch)
        assert row["id"] == batch.id
        assert row["processing_status"] == str(batch.processing_status)
        assert row["created_at"] == exact["created_at"]
        assert row["ended_at"] == (exact["ended_at"] or "")
        assert int(row["request_counts.expired"]) == batch.request_counts.expired


async def test_csv_fields_take_derived_columns(anthropic: FakeBatchesServer, cli: RunCli) -> None:
    """`--fields` picks Message Batch columns: status, created, ended and counts for people."""
    fields = "id,status,created,ended,counts,request_counts.processing"
    code, out, _ = await cli(*against(anthropic, "list", "--format", "csv", "--fields", fields))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    for row, batch in zip(rows, await served(anthropic), strict=True):
        counts = batch.request_counts
        assert row["status"] == str(batch.processing_status)
        assert row["created"] == batch.created_at.strftime("%Y-%m-%d %H:%MZ")
        if batch.is_finished:
            assert batch.ended_at is not None
            assert row["ended"] == batch.ended_at.strftime("%Y-%m-%d %H:%MZ")
            total = counts.succeeded + counts.errored + counts.canceled + counts.expired
            assert row["counts"] == (
                f"{counts.succeeded:,}/{counts.errored:,}/{counts.canceled:,}"
                f"/{counts.expired:,} of {total:,}"
            )
        else:
            assert row["ended"] == ""
            assert row["counts"] == f"processing {counts.processing:,}"


async def test_table_shows_status_times_and_counts(
    anthropic: FakeBatchesServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table's columns are a Message Batch's: its processing status, when it was created
    and ended, and its counts."""
    monkeypatch.setenv("COLUMNS", "140")
    code, out, _ = await cli(*against(anthropic, "list", "--format", "table"))
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "STATUS", "CREATED", "ENDED", "COUNTS"]
    batches = await served(anthropic)
    assert [row.split()[0] for row in rows] == [batch.id for batch in batches]
    for row, batch in zip(rows, batches, strict=True):
        assert row.split()[1] == str(batch.processing_status)
        if not batch.is_finished:
            assert row.endswith(f"processing {batch.request_counts.processing:,}")


async def test_status_filter_takes_processing_statuses(
    anthropic: FakeBatchesServer, cli: RunCli
) -> None:
    """`--status` filters on `processing_status`."""
    code, out, _ = await cli(*against(anthropic, "list", "--status", "in_progress"))
    assert code == 0
    wanted = [b.id for b in await served(anthropic) if b.processing_status == "in_progress"]
    assert wanted
    assert [json.loads(line)["id"] for line in out.splitlines()] == wanted


async def test_key_and_url_fall_back_to_anthropic_variables(
    anthropic: FakeBatchesServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without flags the key is $ANTHROPIC_API_KEY (sent as x-api-key) and the URL
    $ANTHROPIC_BASE_URL; OpenAI's variables are not read."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic.anthropic_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-not-this-one")
    code, out, err = await cli("list", "--provider", "anthropic", "--max-items", "3")
    assert (code, err) == (0, "")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [
        batch.id for batch in (await served(anthropic))[:3]
    ]
    listing = next(r for r in anthropic.requests if r.path == "/v1/messages/batches")
    assert listing.headers["x-api-key"] == API_KEY
    assert "Authorization" not in listing.headers


async def test_the_demo_lists_message_batches(cli: RunCli) -> None:
    """`list --demo --provider anthropic` needs no key and lists the demo's Message Batches."""
    code, out, err = await cli("list", "--demo", "--provider", "anthropic", "--max-items", "5")
    assert (code, err) == (0, "")
    batches = [json.loads(line) for line in out.splitlines()]
    assert len(batches) == 5
    assert all(batch["id"].startswith("msgbatch_") for batch in batches)


async def test_server_text_reaches_a_table_neutralised(
    make_server: MakeServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id with a terminal escape in it is shown as a visible escape, never sent raw."""
    monkeypatch.setenv("COLUMNS", "160")
    evil = held(1, "completed", done=1_000, completed_at=NOW)
    evil["id"] = "batch_\x1b]0;owned\x07"
    server = await make_server(batches=[evil], api_key=API_KEY)
    code, out, _ = await cli(*against(server, "list", "--format", "table"))
    assert code == 0
    assert "\x1b" not in out
    assert "\x07" not in out
    assert "msgbatch_\\x1b]0;owned\\x07" in out


# --- usage errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("list", "--demo", "--provider", "anthropic", "--project", "proj_a"), "--project"),
        (("wait", "--demo", "--provider", "anthropic", "--project", "proj_a"), "--project"),
        (("watch", "--demo", "--provider", "anthropic", "--listen", "127.0.0.1:0"), "--listen"),
        (("list", "--demo", "--provider", "gemini"), "invalid choice"),
        (("serve", "--provider", "azure"), "invalid choice"),
    ],
)
async def test_what_anthropic_does_not_take_is_a_usage_error(
    cli: RunCli, args: tuple[str, ...], says: str
) -> None:
    """A project, OpenAI's webhooks or an unknown provider: exit 2, saying which."""
    code, out, err = await cli(*args)
    assert (code, out) == (2, "")
    assert says in err
    assert "Traceback" not in err


# --- wait --------------------------------------------------------------------------------


async def test_wait_exits_0_when_every_batch_ended_even_with_errored_requests(
    make_server: MakeServer, cli: RunCli
) -> None:
    """Errored requests in an ended batch are a completed batch's failed requests: exit 0."""
    server = await make_server(
        batches=[
            held(1, "completed", done=990, failed=10, completed_at=NOW),
            held(2, "completed", done=1_000, completed_at=NOW),
        ],
        api_key=API_KEY,
    )
    code, out, err = await cli(*against(server, "wait", "msgbatch_000002", "msgbatch_000001"))
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["id"] for line in lines] == ["msgbatch_000002", "msgbatch_000001"]
    assert lines[1]["request_counts"]["errored"] == 10
    assert lines[1]["processing_status"] == "ended"


@pytest.mark.parametrize(
    ("batch", "why"),
    [
        (
            held(3, "cancelled", done=200, cancelling_at=NOW - 60, cancelled_at=NOW),
            "msgbatch_000003 canceled",
        ),
        (held(4, "expired", done=600, expired_at=NOW), "msgbatch_000004 ended with 400 expired"),
    ],
)
async def test_wait_exits_3_for_a_canceled_or_expired_batch(
    make_server: MakeServer, cli: RunCli, batch: dict[str, Any], why: str
) -> None:
    """A batch whose cancellation was asked for, or with an expired request, did not
    complete: exit 3, naming it and how it ended."""
    ok = held(1, "completed", done=1_000, completed_at=NOW)
    server = await make_server(batches=[ok, batch], api_key=API_KEY)
    code, out, err = await cli(
        *against(server, "wait", "msgbatch_000001", f"msgbatch_{batch['id'][6:]}")
    )
    assert code == 3
    assert len(out.splitlines()) == 2
    assert f"1 of 2 did not complete: {why}" in err


async def test_wait_that_runs_out_of_time_names_the_processing_status(
    make_server: MakeServer, cli: RunCli
) -> None:
    """`--timeout` ends a wait for a batch still in progress with 124, saying so."""
    server = await make_server(batches=[held(1, "in_progress", done=10)], api_key=API_KEY)
    code, out, err = await cli(
        *against(server, "wait", "msgbatch_000001", "--interval", "0.01", "--timeout", "0.2")
    )
    assert (code, out) == (124, "")
    assert "0 of 1 batches finished; still waiting for msgbatch_000001 in_progress" in err


@pytest.mark.parametrize("kind", ["json", "csv", "table"])
async def test_wait_prints_message_batches_in_every_format(
    make_server: MakeServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """`wait --format` writes Message Batches as `list` does."""
    monkeypatch.setenv("COLUMNS", "140")
    server = await make_server(
        batches=[held(1, "completed", done=1_000, completed_at=NOW)], api_key=API_KEY
    )
    code, out, _ = await cli(*against(server, "wait", "msgbatch_000001", "--format", kind))
    assert code == 0
    (batch,) = await served(server)
    if kind == "json":
        assert json.loads(out) == [unstructure_batch(batch)]
    elif kind == "csv":
        (cells,) = csv.DictReader(io.StringIO(out))
        assert (cells["id"], cells["processing_status"]) == ("msgbatch_000001", "ended")
    else:
        header, row = out.splitlines()
        assert header.split() == ["ID", "STATUS", "CREATED", "ENDED", "COUNTS"]
        assert row.split()[:2] == ["msgbatch_000001", "ended"]
        assert row.endswith("1,000/0/0/0 of 1,000")


async def test_wait_demo_picks_message_batches_that_end_soon(cli: RunCli) -> None:
    """`wait --demo --provider anthropic` with no ids waits for demo Message Batches that
    end within seconds, and prints them ended."""
    code, out, err = await cli("wait", "--demo", "--provider", "anthropic")
    assert (code, err) == (0, "")
    batches = [json.loads(line) for line in out.splitlines()]
    assert batches
    assert all(batch["id"].startswith("msgbatch_") for batch in batches)
    assert all(batch["processing_status"] == "ended" for batch in batches)


# --- watch -------------------------------------------------------------------------------


async def test_watch_jsonl_events_hold_message_batches(
    make_server: MakeServer, cli: RunCli
) -> None:
    """Piped, each event's batch is the Message Batch exactly; `--status` takes theirs."""
    batches = [
        held(1, "completed", done=1_000, completed_at=NOW),
        held(2, "cancelled", done=10, cancelling_at=NOW - 90, cancelled_at=NOW - 60),
        held(3, "expired", done=10, expired_at=NOW - 60),
    ]
    server = await make_server(batches=batches, api_key=API_KEY)
    code, out, _ = await cli(*against(server, "watch", "--until-finished", "--interval", "0"))
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert [event["batch"] for event in events] == [
        unstructure_batch(b) for b in await served(server)
    ]
    assert {event["kind"] for event in events} == {"existing"}
    code, out, _ = await cli(
        *against(server, "watch", "--until-finished", "--interval", "0", "--status", "in_progress")
    )
    assert (code, out) == (0, "")


async def test_watch_table_shows_ended_message_batches(
    make_server: MakeServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch's table shows ended Message Batches at 100%, with their counts and end."""
    monkeypatch.setenv("COLUMNS", "150")
    batches = [
        held(1, "completed", done=990, failed=10, completed_at=NOW - 30),
        held(2, "completed", done=1_000, completed_at=NOW - 60),
    ]
    server = await make_server(batches=batches, api_key=API_KEY)
    code, out, _ = await cli(
        *against(server, "watch", "--format", "table", "--until-finished", "--interval", "0")
    )
    assert code == 0
    frame = out.split("\n\n")[-2]
    assert "0 unfinished" in frame
    assert "2 finished" in frame
    rows = [line for line in frame.splitlines() if line.startswith("msgbatch_")]
    assert [row.split()[0] for row in rows] == ["msgbatch_000001", "msgbatch_000002"]
    assert "100%" in rows[0]
    assert "990/1,000" in rows[0]
    assert " 10 " in rows[0]


def message_batch(status: str, **fields: Any) -> aiobatches.MessageBatch:
    """A Message Batch created at 02:00Z of 2025-11-13 with 1,000 requests."""
    created = datetime.datetime(2025, 11, 13, 2, 0, 30, 500_000, tzinfo=datetime.UTC)
    counts = aiobatches.MessageBatchRequestCounts(1_000, 0, 0, 0, 0)
    return aiobatches.MessageBatch(
        "msgbatch_01abc", "message_batch", status, counts, created,
        created + datetime.timedelta(days=1), **fields,
    )  # fmt: skip


def test_board_shows_an_unended_batch_at_0_percent_with_its_processing_count() -> None:
    """Counts of a Message Batch change only when it ends, so the board shows 0% and how
    many requests are processing, and SINCE is its creation, in the server's clock."""
    board = Board()
    board.see(aiobatches.BatchEvent("existing", message_batch("in_progress")))
    lines = render(board, 150, 10, interval=1, glyphs=GLYPHS)
    frame = ["".join(text for text, _ in line) for line in lines]
    (row,) = [line for line in frame if line.startswith("msgbatch_01abc")]
    assert "0%" in row
    assert "processing 1,000" in row
    assert row.count("11-13 02:00Z") == 2  # since, and created
    assert "last change 11-13 02:00Z" in frame[0]


def test_board_dates_a_canceling_batch_from_its_cancellation() -> None:
    """A canceling Message Batch reached its status when its cancellation was asked for."""
    board = Board({"canceling"})
    asked = datetime.datetime(2025, 11, 13, 3, 15, 59, 999_999, tzinfo=datetime.UTC)
    board.see(
        aiobatches.BatchEvent("existing", message_batch("canceling", cancel_initiated_at=asked))
    )
    lines = render(board, 150, 10, interval=1, glyphs=GLYPHS)
    frame = "\n".join("".join(text for text, _ in line) for line in lines)
    assert "last change 11-13 03:15Z" in frame
    assert "canceling" in frame


# --- serve -------------------------------------------------------------------------------


async def test_serve_prints_the_anthropic_base_url() -> None:
    """`serve --provider anthropic` prints the base URL an AnthropicClient takes."""
    err_master, err_slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "serve", "--provider", "anthropic", "--count", "9", "--api-key", "sk-ant",
        stdout=asyncio.subprocess.PIPE, stderr=err_slave, env=child_env(),
    )  # fmt: skip
    os.close(err_slave)
    assert process.stdout is not None
    shown = asyncio.get_running_loop().run_in_executor(None, read_pty, err_master)
    async with asyncio.timeout(30):
        url = (await process.stdout.readline()).decode().strip()
        async with aiobatches.AnthropicClient("sk-ant", base_url=url) as client:
            got = await client.list_batches().to_list()
        process.send_signal(signal.SIGINT)
        await process.wait()
        err = (await shown).decode()
    os.close(err_master)
    assert url.startswith("http://127.0.0.1:")
    assert not url.endswith("/v1")
    assert len(got) == 9
    assert all(batch.id.startswith("msgbatch_") for batch in got)
    assert process.returncode == 130
    assert "Traceback" not in err
