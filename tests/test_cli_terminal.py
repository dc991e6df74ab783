"""What the server sends reaches a terminal neutralised, and any number it sends is shown whole."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import pty
from typing import Any

import pytest
from _helpers import (
    API_KEY,
    COMMAND,
    MakeServer,
    RunCli,
    child_env,
    read_pty,
    unsafe_for_terminal,
)

from aiobatches.testing import FakeBatchesServer, Fault, FaultPlan, synthetic_batches

HOSTILE = "\x1b[2J\r\x9b\u202e"
"""Clears the screen, returns the carriage, opens a C1 CSI, reverses the text."""
RAW = unsafe_for_terminal("\n", "\r")
"""A control character that must not reach a terminal (newlines and the pty's CR aside)."""


def hostile_batches() -> list[dict[str, Any]]:
    """Three batches whose id, model and metadata carry terminal escapes and bidi overrides."""
    batches = [dict(batch) for batch in synthetic_batches(3)]
    for index, batch in enumerate(batches):
        batch["id"] = f"batch_{index}{HOSTILE}"
        batch["model"] = f"gpt{HOSTILE}"
        batch["metadata"] = {"note": f"x{HOSTILE}"}
    return batches


def against(server: FakeBatchesServer, *args: str) -> tuple[str, ...]:
    """Arguments that point `list` at the fake server."""
    return ("list", "--base-url", server.url, "--api-key", API_KEY, *args)


@pytest.mark.parametrize("output", ["table", "csv"])
async def test_a_terminal_never_gets_the_servers_control_characters(
    make_server: MakeServer, output: str
) -> None:
    """On a terminal, table and csv show escapes (`\\x1b[2J`) where the server sent controls."""
    server = await make_server(hostile_batches(), api_key=API_KEY)
    master, slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        *against(server, "--format", output, "--fields", "id,model,metadata"),
        stdout=slave,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(COLUMNS="100"),
    )
    os.close(slave)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(30):
        screen, (_, err) = await asyncio.gather(
            loop.run_in_executor(None, read_pty, master), process.communicate()
        )
    os.close(master)
    assert process.returncode == 0, err
    text = screen.decode()
    assert not RAW.search(text)
    assert "\x1b" not in text
    assert text.count("\\x1b[2J\\r\\x9b\\u202e") == 6  # in ids and models
    assert text.count("x\\u001b[2J\\r\\u") == 3  # in metadata, escaped by JSON, C1 included


async def test_csv_to_a_pipe_keeps_the_servers_text_exactly(
    make_server: MakeServer, cli: RunCli
) -> None:
    """Piped, csv holds the server's characters as they were sent."""
    batches = hostile_batches()
    server = await make_server(batches, api_key=API_KEY)
    code, out, _ = await cli(*against(server, "--format", "csv"))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [row["id"] for row in rows] == [batch["id"] for batch in batches]
    assert [json.loads(row["metadata"]) for row in rows] == [b["metadata"] for b in batches]


async def test_api_error_line_neutralises_the_servers_message(
    make_server: MakeServer, cli: RunCli
) -> None:
    """An error message with escapes from the server becomes one line of visible escapes."""
    message = "denied\x1b]0;pwned\x07\x1b[2J\r\nfake prompt$ \u202e"
    body = json.dumps({"error": {"message": message, "type": "x", "param": None, "code": None}})
    server = await make_server(count=5, api_key=API_KEY, faults={0: Fault.respond(403, body=body)})
    code, out, err = await cli(*against(server))
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert not RAW.search(line)
    assert "denied\\x1b]0;pwned\\x07\\x1b[2J" in line
    assert "fake prompt$ \\u202e" in line


OUT_OF_RANGE = 2**70
FIELDS = (
    "id,created_at,created,request_counts.total,request_counts.completed,request_counts.failed,"
    "usage.input_tokens,usage.output_tokens,usage.total_tokens"
)


def out_of_range_batches() -> list[dict[str, Any]]:
    """Two batches with timestamps past 2**63 and counts and usage far past 64 bits."""
    batches = [dict(batch) for batch in synthetic_batches(2)]
    for batch, created_at in zip(batches, [2**63, OUT_OF_RANGE], strict=True):
        batch["created_at"] = created_at
        batch["request_counts"] = {"total": 2**70, "completed": 2**70 - 1, "failed": 2**64}
        batch["usage"] = {  # within the table's 24-character columns, yet past 64 bits
            "input_tokens": 2**72,
            "input_tokens_details": {"cached_tokens": 2**65},
            "output_tokens": 2**75,
            "output_tokens_details": {"reasoning_tokens": 2**100},
            "total_tokens": 2**72 + 2**75,
        }
    return batches


@pytest.fixture
async def out_of_range_server(
    make_server: MakeServer,
) -> tuple[FakeBatchesServer, list[dict[str, Any]]]:
    """A server whose pages carry out-of-range numbers, encoded by the stdlib (orjson cannot)."""
    batches = out_of_range_batches()
    page = {"object": "list", "data": batches, "first_id": None, "last_id": None, "has_more": False}
    fault = Fault.respond(200, body=json.dumps(page))
    server = await make_server(count=1, api_key=API_KEY, faults=FaultPlan(rate=1.0, pool=[fault]))
    return server, batches


@pytest.mark.parametrize("output", ["jsonl", "json", "csv", "table"])
async def test_out_of_range_numbers_from_the_server_parse_back_exactly(
    output: str,
    out_of_range_server: tuple[FakeBatchesServer, list[dict[str, Any]]],
    cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Times past 2**63 and counts past 64 bits come out whole in every format."""
    server, batches = out_of_range_server
    monkeypatch.setenv("COLUMNS", "400")
    code, out, err = await cli(*against(server, "--format", output, "--fields", FIELDS))
    assert code == 0
    assert err == ""
    if output in ("jsonl", "json"):
        got = (
            [json.loads(line) for line in out.splitlines()]
            if output == "jsonl"
            else json.loads(out)
        )
        keys = ("id", "created_at", "request_counts", "usage")
        assert [{k: b[k] for k in keys} for b in got] == [{k: b[k] for k in keys} for b in batches]
        return
    if output == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
    else:
        header, *body = out.splitlines()
        rows = [dict(zip(header.lower().split(), line.split(), strict=True)) for line in body]
    for row, batch in zip(rows, batches, strict=True):
        assert row["id"] == batch["id"]
        assert int(row["created_at"]) == int(row["created"]) == batch["created_at"]
        for name, value in batch["request_counts"].items():
            assert int(row[f"request_counts.{name}"]) == value
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            assert int(row[f"usage.{name}"]) == batch["usage"][name]
