"""`aiobatches watch --state FILE`: a watch stopped and started again with the same file goes
on where it stopped, and the file is only ever a whole checkpoint, or left alone."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _helpers import API_KEY, MakeServer, RunCli

from aiobatches._cli import _main, _statefile, _watch
from aiobatches._cli._common import CommandError
from aiobatches.testing import FakeBatchesServer, ManualClock

FINISHED = {"completed", "failed", "expired", "cancelled"}


def watching(server: FakeBatchesServer, state: Path, *args: str) -> list[str]:
    """`watch` of the server, saving its state in `state`."""
    return [
        "watch", "--base-url", server.url, "--api-key", API_KEY,
        "--interval", "600", "--state", str(state), *args,
    ]  # fmt: skip


def events(out: str) -> list[dict[str, Any]]:
    """Every line of the output, parsed."""
    return [json.loads(line) for line in out.splitlines()]


async def stopped_after(
    server: FakeBatchesServer,
    clock: ManualClock,
    state: Path,
    polls: int,
    at_rest: Callable[[], None] = lambda: None,
) -> tuple[str, dict[str, str]]:
    """Run `watch` in this loop, call `at_rest` at each rest, and cancel it (as SIGTERM
    does) at its `polls`-th; what it printed, and each batch's status when it was stopped."""
    args = _main._parse(watching(server, state))
    out = io.StringIO()
    task: asyncio.Task[int] | None = None
    rests = 0
    statuses: dict[str, str] = {}

    def rest(_: float) -> None:
        nonlocal rests
        at_rest()
        rests += 1
        if rests == polls:
            assert task is not None
            task.cancel()
            statuses.update((item["id"], item["status"]) for item in server.batches)

    with clock.driving_sleeps(rest):  # the task takes its context, where sleeps are driven
        task = asyncio.get_running_loop().create_task(_watch.COMMAND.run(args, out, None))
        with pytest.raises(asyncio.CancelledError):
            await task
    return out.getvalue(), statuses


def check_told(last: dict[str, dict[str, Any]], told: list[dict[str, Any]]) -> None:
    """Each event says something new of a batch: "updated" only of one known before, with
    the changes from what was known; then `last` holds what it told."""
    for event in told:
        item = event["batch"]
        before = last.get(item["id"])
        if event["kind"] == "updated":
            assert before is not None
            differ = {k for k in {*before, *item} if before.get(k) != item.get(k)}
            assert set(event["changes"]) == differ != set()
        else:
            assert before is None
        last[item["id"]] = item


async def test_a_watch_run_again_with_its_state_tells_only_what_changed_meanwhile(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """Stopped and run again with the same --state: no "existing" flood, every change since
    is told once, and together the two runs end at the server's state."""
    clock = ManualClock()
    server = await make_server(count=60, api_key=API_KEY, clock=clock, arrival_every=900.0)
    state = tmp_path / "watch.json"
    printed, _ = await stopped_after(server, clock, state, polls=3)
    first = events(printed)
    assert [e["kind"] for e in first[:60]] == ["existing"] * 60
    assert json.loads(state.read_text())  # saved when it was stopped
    clock.advance(6 * 3600)  # batches finish and arrive while nothing watches
    printed, statuses = await stopped_after(server, clock, state, polls=2)
    second = events(printed)
    assert {e["kind"] for e in second} == {"created", "updated"}
    last: dict[str, dict[str, Any]] = {}
    check_told(last, first)
    check_told(last, second)
    assert {batch_id: item["status"] for batch_id, item in last.items()} == statuses
    assert any(status in FINISHED for status in statuses.values())


async def test_a_state_file_that_is_not_a_checkpoint_exits_2_and_is_left_alone(
    make_server: MakeServer, cli: RunCli, tmp_path: Path
) -> None:
    """A state file that is not JSON, or that resume refuses, is a usage error, unchanged."""
    server = await make_server(count=5, api_key=API_KEY)
    for content in (b"{not json", b"[1, 2]", b'{"version": 999}', b"\xff\xfe"):
        state = tmp_path / "watch.json"
        state.write_bytes(content)
        code, out, err = await cli(*watching(server, state))
        assert (code, out) == (2, "")
        assert err.startswith("aiobatches: ")
        assert err.count("\n") == 1
        assert "state file" in err
        assert state.read_bytes() == content
        assert sorted(tmp_path.iterdir()) == [state]  # noqa: ASYNC240 - a test's look


async def test_a_state_file_that_is_no_regular_file_or_too_large_is_never_read(
    make_server: MakeServer, cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO (whose opening would wait for a writer), an endless device, or a file
    larger than any checkpoint is a usage error at once, never read into memory."""
    server = await make_server(count=5, api_key=API_KEY)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setattr(_statefile, "MAX_BYTES", 1000)
    large = tmp_path / "large.json"
    large.write_bytes(b'{"version": 1, "padding": "' + b"x" * 2000 + b'"}')
    for state in (fifo, Path("/dev/zero"), large):
        code, out, err = await cli(*watching(server, state))
        assert (code, out) == (2, "")
        assert "is no watch state (not a regular file" in err, err
    assert server.page_request_count == 0


async def test_since_or_ids_with_an_existing_state_file_is_a_usage_error(
    make_server: MakeServer, cli: RunCli, tmp_path: Path
) -> None:
    """--since and --ids are in the state file: given again when resuming, exit 2."""
    clock = ManualClock()
    server = await make_server(count=5, api_key=API_KEY, clock=clock)
    state = tmp_path / "watch.json"
    await stopped_after(server, clock, state, polls=1)
    saved = state.read_bytes()
    code, out, err = await cli(*watching(server, state, "--ids", "batch_1"))
    assert (code, out) == (2, "")
    assert "--since and --ids" in err
    assert state.read_bytes() == saved


def test_saving_replaces_the_file_whole_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint is written to a synced temporary file renamed over FILE: a failure
    midway leaves the old file whole and no temporary file behind."""
    state = tmp_path / "watch.json"
    _statefile.save(state, {"version": 1, "n": 1})
    assert json.loads(state.read_text()) == {"version": 1, "n": 1}
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    reader = tmp_path / "reader.json"
    os.link(state, reader)  # a reader that opened the old file keeps reading it whole
    _statefile.save(state, {"version": 1, "n": 2})
    assert json.loads(state.read_text()) == {"version": 1, "n": 2}
    assert synced  # on disk before the rename
    # A rename, not a rewrite in place: FILE is a new file, and the old one is untouched.
    assert not state.samefile(reader)
    assert json.loads(reader.read_text()) == {"version": 1, "n": 1}
    reader.unlink()
    assert sorted(tmp_path.iterdir()) == [state]

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(CommandError, match="No space left"):
        _statefile.save(state, {"version": 1, "n": 3, "padding": "x" * 100_000})
    assert json.loads(state.read_text()) == {"version": 1, "n": 2}
    assert sorted(tmp_path.iterdir()) == [state]


async def test_the_state_file_always_parses_while_a_watch_saves_it(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """Read at every rest of a watch, the state file is a whole checkpoint, saved again as
    events come, and no temporary file is left beside it."""
    clock = ManualClock()
    # Requests slower than the settling time, as real ones are: the watch saves before each.
    server = await make_server(count=30, api_key=API_KEY, clock=clock, latency=0.1)
    state = tmp_path / "watch.json"
    read: list[dict[str, Any]] = []

    def at_rest() -> None:
        assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["watch.json"])
        if state.exists():  # not yet at the first rest: the save waits for the events to settle
            read.append(json.loads(state.read_text()))

    await stopped_after(server, clock, state, polls=4, at_rest=at_rest)
    assert len(read) >= 3
    assert read[0] != read[-1]  # saved again as batches moved
