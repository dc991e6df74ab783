"""`aiobatches wait ID...`: waits until the batches finish, prints them in the order given, and
exits by how they ended (0 all completed, 3 any not, 124 out of time, 1 API error, 2 usage)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from _helpers import API_KEY, MakeServer, RunCli
from _scripted import FINISHED, KEY, ScriptedServer, batch, between_polls

from aiobatches.testing import ManualClock


def against(scripted: ScriptedServer, *args: str) -> tuple[str, ...]:
    """`wait` pointed at the scripted server."""
    return ("wait", "--base-url", scripted.url, "--api-key", KEY, *args)


def present(item: Mapping[str, Any]) -> dict[str, Any]:
    """A batch's keys that are not null: an absent key and a null mean the same (the server
    omits `model` and `usage` where real ones do; the output writes them as null)."""
    return {key: value for key, value in item.items() if value is not None}


def ids_in(out: str) -> list[str]:
    """The ids of JSON Lines output, in order."""
    return [json.loads(line)["id"] for line in out.splitlines()]


def finishing(
    scripted: ScriptedServer, *steps: Callable[[list[dict[str, Any]]], None]
) -> contextlib.AbstractContextManager[list[float]]:
    """Between polls, apply each step to the server's batches in turn (then change nothing)."""
    remaining = list(steps)

    async def hook(_: float) -> None:
        if remaining:
            remaining.pop(0)(scripted.batches)

    return between_polls(hook)


async def test_all_completed_prints_them_in_the_order_given_and_exits_0(
    scripted: ScriptedServer, cli: RunCli
) -> None:
    """Finished batches are printed at once, one JSON line each, in the order of the ids."""
    scripted.batches = [batch(1, "completed", done=1000), batch(2, "completed", done=1000)]
    code, out, err = await cli(*against(scripted, "batch_000002", "batch_000001"))
    assert (code, err) == (0, "")
    assert ids_in(out) == ["batch_000002", "batch_000001"]
    assert json.loads(out.splitlines()[0]) == scripted.batches[1]


async def test_a_batch_ending_otherwise_exits_3_and_names_it(
    scripted: ScriptedServer, cli: RunCli
) -> None:
    """A failed batch among completed ones: all printed, exit 3, stderr names the failed one."""
    scripted.batches = [batch(1, "completed", done=1000), batch(2, "failed")]
    code, out, err = await cli(*against(scripted, "batch_000001", "batch_000002"))
    assert code == 3
    assert ids_in(out) == ["batch_000001", "batch_000002"]
    assert err == "aiobatches: 1 of 2 did not complete: batch_000002 failed\n"


async def test_it_waits_through_polls_until_every_batch_is_finished(
    scripted: ScriptedServer, cli: RunCli
) -> None:
    """Batches that finish over later polls are printed once the last one has finished."""
    scripted.batches = [batch(1, "in_progress", done=10), batch(2, "validating")]

    def first(batches: list[dict[str, Any]]) -> None:
        batches[0] = batch(1, "completed", done=1000)

    def second(batches: list[dict[str, Any]]) -> None:
        batches[1] = batch(2, "expired", done=3)

    with finishing(scripted, first, second) as delays:
        code, out, _ = await cli(*against(scripted, "batch_000001", "batch_000002"))
    assert code == 3
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["completed", "expired"]
    assert delays == [15.0, 15.0]  # the library's interval, as a real API wants


async def test_interval_sets_the_pause_between_polls(scripted: ScriptedServer, cli: RunCli) -> None:
    """`--interval 0.5` is the pause the wait takes between polls."""
    scripted.batches = [batch(1, "in_progress")]

    def done(batches: list[dict[str, Any]]) -> None:
        batches[0] = batch(1, "completed", done=1000)

    with finishing(scripted, done) as delays:
        code, _, _ = await cli(*against(scripted, "--interval", "0.5", "batch_000001"))
    assert code == 0
    assert delays == [0.5]


async def test_running_out_of_time_exits_124_saying_what_is_left(
    scripted: ScriptedServer, cli: RunCli
) -> None:
    """Out of --timeout: exit 124, nothing on stdout, and stderr says what is still unfinished."""
    scripted.batches = [batch(1, "in_progress", done=5), batch(2, "completed", done=1000)]
    code, out, err = await cli(
        *against(scripted, "--interval", "0.01", "--timeout", "0.2", "batch_000001", "batch_000002")
    )
    assert code == 124
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("aiobatches: gave up after 0.2s: 1 of 2 batches finished")
    assert line.endswith("still waiting for batch_000001 in_progress")


async def test_an_unknown_id_exits_1_at_once(scripted: ScriptedServer, cli: RunCli) -> None:
    """An id the API does not know is an API error (404): exit 1, one line naming it."""
    scripted.batches = [batch(1, "in_progress")]
    code, out, err = await cli(*against(scripted, "batch_000001", "batch_missing"))
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("aiobatches: waiting for batches failed: ")
    assert "batch_missing" in line
    assert "status 404" in line
    assert "--after" not in line


@pytest.mark.parametrize("output", ["json", "csv", "table"])
async def test_every_output_format_parses_back(
    scripted: ScriptedServer, cli: RunCli, output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--format json|csv|table` write the finished batches as `list` would."""
    monkeypatch.setenv("COLUMNS", "120")
    scripted.batches = [batch(1, "completed", done=1000), batch(2, "cancelled", done=7)]
    code, out, _ = await cli(*against(scripted, "--format", output, "batch_000002", "batch_000001"))
    assert code == 3
    if output == "json":
        assert [b["id"] for b in json.loads(out)] == ["batch_000002", "batch_000001"]
    elif output == "csv":
        header, *rows = out.splitlines()
        assert header.startswith("id,status,")
        assert [row.split(",")[:2] for row in rows] == [
            ["batch_000002", "cancelled"],
            ["batch_000001", "completed"],
        ]
    else:
        header, *rows = out.splitlines()
        assert header.split()[:2] == ["ID", "STATUS"]
        assert [row.split()[:2] for row in rows] == [
            ["batch_000002", "cancelled"],
            ["batch_000001", "completed"],
        ]


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


async def test_a_terminal_sees_how_many_have_finished(
    scripted: ScriptedServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, stderr counts finished batches and requests as polls see them, then clears."""
    monkeypatch.setenv("COLUMNS", "80")
    stderr = Terminal()
    monkeypatch.setattr("sys.stderr", stderr)
    scripted.batches = [batch(1, "in_progress", done=10), batch(2, "completed", done=1000)]

    def done(batches: list[dict[str, Any]]) -> None:
        batches[0] = batch(1, "completed", done=1000)

    with finishing(scripted, done):
        code, out, _ = await cli(*against(scripted, "batch_000001", "batch_000002"))
    assert code == 0
    assert ids_in(out) == ["batch_000001", "batch_000002"]
    shown = stderr.getvalue()
    steps = shown.split("\r\x1b[K")
    assert steps[1:] == [
        "waiting: 0 of 2 batches finished",
        "waiting: 1 of 2 batches finished; 1,010 of 2,000 requests processed",
        "waiting: 2 of 2 batches finished; 2,000 of 2,000 requests processed",
        "",
    ]


async def test_piped_stderr_gets_no_progress(scripted: ScriptedServer, cli: RunCli) -> None:
    """Progress is for terminals: a piped stderr stays empty on success."""
    scripted.batches = [batch(1, "completed", done=1000)]
    code, _, err = await cli(*against(scripted, "batch_000001"))
    assert code == 0
    assert err == ""


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("",),
        ("batch_a/../files",),
        ("..",),
        (".",),
        ("batch_\x1b[2J",),
        ("--interval", "-1", "batch_a"),
        ("--interval", "nan", "batch_a"),
        ("--timeout", "0", "batch_a"),
        ("--timeout", "inf", "batch_a"),
        ("--format", "xml", "batch_a"),
    ],
)
async def test_usage_errors_exit_2_before_any_request(
    scripted: ScriptedServer, cli: RunCli, args: tuple[str, ...]
) -> None:
    """No id, a bad id, interval, timeout or format: exit 2 before any request, nothing raw."""
    code, out, err = await cli(*against(scripted, *args))
    assert code == 2
    assert out == ""
    assert "\x1b" not in err
    assert scripted.lists == []
    assert scripted.retrievals == []


# --- against the living fake server ----------------------------------------------------------


async def test_on_a_living_server_it_prints_each_batch_as_it_ended(
    make_server: MakeServer, cli: RunCli
) -> None:
    """On a living server, unfinished batches are awaited and printed as the server ends them."""
    clock = ManualClock()
    server = await make_server(count=60, api_key=API_KEY, clock=clock)
    waiting = [item["id"] for item in server.batches if item["status"] not in FINISHED][:3]
    assert len(waiting) == 3
    with clock.driving_sleeps() as pauses:
        code, out, _ = await cli(
            "wait", "--base-url", server.url, "--api-key", API_KEY, "--interval", "600", *waiting
        )
    final = {item["id"]: item for item in server.batches}
    printed = [json.loads(line) for line in out.splitlines()]
    assert [present(item) for item in printed] == [present(final[i]) for i in waiting]
    assert all(item["status"] in FINISHED for item in printed)
    assert code == (0 if all(item["status"] == "completed" for item in printed) else 3)
    assert set(pauses) == {600.0}


async def test_demo_ids_from_list_are_the_ones_wait_demo_knows(cli: RunCli) -> None:
    """`list --demo` shows ids `wait --demo` knows, and every --demo run lists the same ids."""
    code, out, _ = await cli("list", "--demo", "--status", "in_progress")
    assert code == 0
    again = (await cli("list", "--demo", "--status", "in_progress"))[1]
    assert ids_in(out) == ids_in(again)
    slow = ids_in(out)[-1]  # the oldest in progress: hours of work left, minutes in the demo
    code, out, err = await cli("wait", "--demo", "--timeout", "0.5", slow)
    assert code == 124
    assert out == ""
    assert err.endswith(f"still waiting for {slow} in_progress\n")


async def test_demo_batches_already_finished_are_printed_at_once(cli: RunCli) -> None:
    """`wait --demo` on demo batches already finished prints them at once and exits 0."""
    _, out, _ = await cli("list", "--demo", "--status", "completed", "--max-items", "2")
    done = ids_in(out)
    code, out, err = await cli("wait", "--demo", *done)
    assert (code, err) == (0, "")
    assert ids_in(out) == done
