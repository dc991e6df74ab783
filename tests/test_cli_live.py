"""Living servers from the command line: `wait --demo` with no ids picks batches that finish
within seconds, and `serve --live` serves batches that move, at the `--speed` asked for."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import time

import pytest
from _helpers import COMMAND, RunCli, child_env

import aiobatches
from aiobatches import Batch, BatchRequestCounts
from aiobatches._cli import main
from aiobatches._cli._source import DEMO_KEY
from aiobatches._cli._wait import DEMO_PICKS, soonest
from aiobatches._converter import unstructure_batch
from aiobatches.testing import FakeBatchesServer, ManualClock


def ids_in(out: str) -> list[str]:
    """The ids of JSON Lines output, in order."""
    return [json.loads(line)["id"] for line in out.splitlines()]


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


async def test_wait_demo_without_ids_waits_for_a_few_that_finish_within_seconds(
    cli: RunCli,
) -> None:
    """`wait --demo` alone waits for 3 demo batches unfinished at its start, all done in seconds."""
    started = time.monotonic()
    code, out, err = await cli("wait", "--demo")
    took = time.monotonic() - started
    assert (code, err) == (0, "")  # all completed; stderr is no terminal: nothing said
    printed = [json.loads(line) for line in out.splitlines()]
    assert len(printed) == DEMO_PICKS == len(set(ids_in(out)))
    assert all(batch["status"] == "completed" for batch in printed)
    assert took < 10
    code, out, _ = await cli("list", "--demo", "--status", "in_progress", "--status", "finalizing")
    assert set(ids_in(out)) >= {batch["id"] for batch in printed}  # unfinished at the start


async def test_wait_demo_says_on_a_terminal_which_ids_it_waits_for(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, `wait --demo` first says which demo batches it picked, then shows progress."""
    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    code, out, _ = await cli("wait", "--demo", "--format", "jsonl")
    assert code == 0
    first = stderr.getvalue().splitlines()[0]
    said = first.removeprefix(f"aiobatches: waiting for the {DEMO_PICKS} demo batches closest")
    assert said.split(": ")[1].split() == ids_in(out)
    assert "waiting: 3 of 3 batches finished" in stderr.getvalue()


async def test_wait_without_ids_or_demo_is_a_usage_error(cli: RunCli) -> None:
    """No ids and no --demo: exit 2 saying an ID is needed, before any request."""
    code, out, err = await cli("wait", "--interval", "1")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        "aiobatches wait: error: the following arguments are required: ID (or --demo)"
    )


def batch(
    name: str, status: str, *, done: int = 0, started: int | None = 1_000, total: int = 100
) -> Batch:
    """A batch of `total` requests, `done` of them processed, in progress since `started`."""
    return Batch(
        id=name,
        object="batch",
        endpoint="/v1/responses",
        input_file_id="file-x",
        completion_window="24h",
        status=status,
        created_at=900,
        in_progress_at=started,
        request_counts=BatchRequestCounts(total=total, completed=done, failed=0),
    )


def test_soonest_ranks_by_the_time_left_at_the_pace_kept() -> None:
    """Finalizing, then in progress by time left at its pace, no pace last; never cancelling."""
    now = 2_000  # in progress for 1,000 seconds
    batches = [
        batch("a_validating", "validating", started=None),
        batch("b_half", "in_progress", done=50),  # 1,000 s left
        batch("c_done", "completed", done=100),  # finished: never picked
        batch("d_nine_tenths", "in_progress", done=90),  # about 111 s left
        batch("e_none_yet", "in_progress", done=0),  # no pace yet
        batch("f_finalizing", "finalizing", done=100),
        batch("g_fifth", "in_progress", done=20),  # 4,000 s left
        batch("h_cancelling", "cancelling", done=30),  # can only end cancelled: never picked
    ]
    assert [b.id for b in soonest(batches, now, 4)] == [
        "f_finalizing",
        "d_nine_tenths",
        "b_half",
        "g_fifth",
    ]
    assert [b.id for b in soonest(batches, now, 10)][-2:] == ["a_validating", "e_none_yet"]
    assert "h_cancelling" not in [b.id for b in soonest(batches, now, 10)]


def test_soonest_picks_fewer_rather_than_a_cancelling_batch() -> None:
    """With fewer candidates than asked, `soonest` gives those there are, never a cancelling one."""
    batches = [
        batch("a_cancelling", "cancelling", done=99),
        batch("b_half", "in_progress", done=50),
        batch("c_cancelling", "cancelling", done=0, started=None),
        batch("d_done", "completed", done=100),
    ]
    assert [b.id for b in soonest(batches, 2_000, DEMO_PICKS)] == ["b_half"]
    assert soonest([b for b in batches if b.id != "b_half"], 2_000, DEMO_PICKS) == []


def demo_serving(monkeypatch: pytest.MonkeyPatch, *batches: Batch) -> None:
    """Make --demo's embedded server serve `batches` as they are, on a clock that stands still."""

    def serving(**_: object) -> FakeBatchesServer:
        return FakeBatchesServer(
            [unstructure_batch(one) for one in batches], clock=ManualClock(), api_key=DEMO_KEY
        )

    monkeypatch.setattr("aiobatches._cli._source.living_server", serving)


async def test_wait_demo_with_only_cancelling_batches_unfinished_exits_2(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`wait --demo` with no id when every unfinished demo batch is cancelling: exit 2 saying so."""
    demo_serving(
        monkeypatch,
        batch("batch_a", "cancelling", done=30),
        batch("batch_b", "cancelling", done=0, started=None),
        batch("batch_c", "completed", done=100),
    )
    code, out, err = await cli("wait", "--demo", "--timeout", "5")
    assert (code, out) == (2, "")
    assert err == (
        "aiobatches: the demo has no unfinished batch that can complete: give ids"
        " (`aiobatches list --demo` shows them)\n"
    )


async def test_wait_demo_waits_for_fewer_than_3_rather_than_a_cancelling_batch(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`wait --demo` with one batch able to complete, the others cancelling, waits for that one."""
    demo_serving(
        monkeypatch,
        batch("batch_cancelling_1", "cancelling", done=30),
        batch("batch_finalizing", "finalizing", done=100),
        batch("batch_cancelling_2", "cancelling", done=99),
    )
    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    code, out, _ = await cli("wait", "--demo", "--timeout", "0.3", "--interval", "0.05")
    assert (code, out) == (124, "")  # the scripted batches stand still
    said = stderr.getvalue()
    assert "waiting for the demo batch closest to finishing: batch_finalizing\n" in said
    assert (
        "gave up after 0.3s: 0 of 1 batches finished; still waiting for batch_finalizing finalizing"
        in said
    )
    assert "cancelling" not in said


async def started(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    """`aiobatches serve ARGS` in a child process, and the URL it prints."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "serve",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        url = (await process.stdout.readline()).decode().strip()
    return process, url


async def snapshot(url: str) -> dict[str, Batch]:
    async with aiobatches.Client(api_key="sk-live", base_url=url) as client:
        return {batch.id: batch async for batch in client.list_batches()}


async def test_serve_live_serves_batches_that_move_over_real_http() -> None:
    """`serve --live --speed 600`: over HTTP on 127.0.0.1, batches move and new ones appear."""
    process, url = await started(
        "--live", "--speed", "600", "--count", "40", "--api-key", "sk-live"
    )
    try:
        assert url.startswith("http://127.0.0.1:")
        before = await snapshot(url)
        await asyncio.sleep(1.5)  # ten server minutes
        after = await snapshot(url)
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            _, err = await process.communicate()
    assert process.returncode == 130
    assert err == b""  # no terminal: no "serving" line, and never a traceback
    assert set(after) - set(before)  # new batches arrived (one every 90 server seconds)
    moved = [i for i in before.keys() & after.keys() if before[i] != after[i]]
    assert moved  # and some that were there changed status or counts


async def test_serve_without_live_never_changes() -> None:
    """Plain `serve` keeps its batches as they are, as before `--live` existed."""
    process, url = await started("--count", "20")
    try:
        before = await snapshot(url)
        await asyncio.sleep(0.5)
        after = await snapshot(url)
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            await process.communicate()
    assert process.returncode == 130
    assert before == after
    assert len(before) == 20


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--speed", "60"), "--speed sets the clock of --live batches: add --live"),
        (("--live", "--speed", "0"), "argument --speed: must be more than 0, got '0'"),
        (("--live", "--speed", "-1"), "argument --speed: must be more than 0, got '-1'"),
        (("--live", "--speed", "fast"), "argument --speed: expected clock seconds a second"),
        (("--live", "--speed", "86401"), "argument --speed: must be 86400 or less, got '86401'"),
    ],
)
def test_bad_speeds_are_usage_errors(
    args: tuple[str, ...], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--speed must come with --live and be a number of clock seconds above 0, up to a day."""
    assert main(["serve", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert said in err.splitlines()[-1]
