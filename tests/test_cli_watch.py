"""`aiobatches watch`, run in this process: JSON Lines of events when piped, and the table's
frames (as written to a file) over a few polls of a server the test scripts between them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pytest
from _helpers import API_KEY, MakeServer, RunCli, envelope, unsafe_for_terminal
from _scripted import FINISHED, KEY, UNFINISHED, ScriptedServer, batch, between_polls
from hypothesis import given, settings
from hypothesis import strategies as st

from aiobatches import Batch, BatchEvent
from aiobatches._cli import _board
from aiobatches._cli._board import Board
from aiobatches._cli._layout import Glyphs, Line, render, server_time
from aiobatches._converter import parse_page, unstructure_batch
from aiobatches.testing import Fault, FaultPlan, ManualClock, synthetic_batches

UNSAFE = unsafe_for_terminal("\n")
"""A character that must not reach a terminal raw (the newline ending each line aside)."""

Step = Callable[[list[dict[str, Any]]], None]


def against(watched: ScriptedServer, *args: str) -> tuple[str, ...]:
    """`watch` pointed at the scripted server."""
    return ("watch", "--base-url", watched.url, "--api-key", KEY, *args)


def progress(batches: list[dict[str, Any]]) -> None:
    """A gets on; D arrives on top."""
    batches[0] = batch(1, "in_progress", done=500)
    batches.insert(0, batch(0, "validating"))


def finish(batches: list[dict[str, Any]]) -> None:
    """D and A complete, B fails."""
    batches[:3] = [
        batch(0, "completed", done=1000),
        batch(1, "completed", done=1000),
        batch(2, "failed"),
    ]


def scripted(
    watched: ScriptedServer,
    *steps: Step,
    before: Callable[[int], Awaitable[None]] | None = None,
) -> contextlib.AbstractContextManager[list[float]]:
    """At each pause of the watch, run `before(n)` then apply the n-th step to the batches."""
    remaining = list(steps)
    count = 0

    async def hook(_: float) -> None:
        nonlocal count
        if before is not None:
            await before(count)
        count += 1
        if remaining:
            remaining.pop(0)(watched.batches)

    return between_polls(hook)


def events(out: str) -> list[dict[str, Any]]:
    """Every line of the output, parsed: each must be one JSON object."""
    return [json.loads(line) for line in out.splitlines()]


def summary(parsed: list[dict[str, Any]]) -> list[tuple[str, str, list[str], bool]]:
    """(kind, batch id, changes, finished) of each event."""
    return [(e["kind"], e["batch"]["id"], e["changes"], e["finished"]) for e in parsed]


async def test_piped_events_are_json_lines_over_the_polls(
    watched: ScriptedServer, cli: RunCli
) -> None:
    """Piped, each event is one JSON line: existing first, then each poll's created and updated."""
    with scripted(watched, progress, finish) as pauses:
        code, out, err = await cli(*against(watched, "--until-finished"))
    assert (code, err) == (0, "")
    assert pauses == [15.0, 15.0]
    changed = ["status", "request_counts"]
    assert summary(events(out)) == [
        ("existing", "batch_000001", [], False),
        ("existing", "batch_000002", [], False),
        ("existing", "batch_000003", [], False),  # finished already: not news
        ("created", "batch_000000", [], False),
        ("updated", "batch_000001", ["request_counts"], False),
        ("updated", "batch_000000", changed, True),
        ("updated", "batch_000001", changed, True),
        ("updated", "batch_000002", ["status"], True),
    ]


async def test_an_events_batch_is_exactly_what_list_prints(
    watched: ScriptedServer, cli: RunCli
) -> None:
    """The `batch` of an event has the API's field names and values, as `list` writes them."""
    with scripted(watched, progress, finish):
        _, out, _ = await cli(*against(watched, "--until-finished"))
    code, listed, _ = await cli("list", "--base-url", watched.url, "--api-key", KEY)
    assert code == 0
    last = {event["batch"]["id"]: event["batch"] for event in events(out)}
    assert [last[item["id"]] for item in events(listed)] == events(listed)


async def test_status_keeps_only_events_of_batches_with_that_status(
    watched: ScriptedServer, cli: RunCli
) -> None:
    """`--status validating --status failed` emits only events whose batch has one of those."""
    with scripted(watched, progress, finish):
        code, out, _ = await cli(
            *against(watched, "--until-finished", "--status", "validating", "--status", "failed")
        )
    assert code == 0
    assert [(e["kind"], e["batch"]["id"], e["batch"]["status"]) for e in events(out)] == [
        ("existing", "batch_000002", "validating"),
        ("created", "batch_000000", "validating"),
        ("updated", "batch_000002", "failed"),
    ]


async def test_ids_watches_only_those_batches(watched: ScriptedServer, cli: RunCli) -> None:
    """`--ids` follows the batches named and no other, ending when they are finished."""
    with scripted(watched, progress, finish):
        code, out, _ = await cli(*against(watched, "--until-finished", "--ids", "batch_000002"))
    assert code == 0
    assert summary(events(out)) == [
        ("existing", "batch_000002", [], False),
        ("updated", "batch_000002", ["status"], True),
    ]


async def test_since_limits_the_first_look(watched: ScriptedServer, cli: RunCli) -> None:
    """`--since` (Unix seconds or ISO) leaves out batches created before it."""
    with scripted(watched, progress, finish):
        code, out, _ = await cli(
            *against(watched, "--until-finished", "--since", "2025-11-13T02:11:00Z")
        )
    assert code == 0  # A and B were created at 02:12:20 and 02:11:20, C at 02:10:20
    assert [e["batch"]["id"] for e in events(out) if e["kind"] == "existing"] == [
        "batch_000001",
        "batch_000002",
    ]


async def test_interval_is_the_pause_between_polls(watched: ScriptedServer, cli: RunCli) -> None:
    """`--interval 0.25` is the pause between polls."""
    with scripted(watched, progress, finish) as pauses:
        code, _, _ = await cli(*against(watched, "--until-finished", "--interval", "0.25"))
    assert code == 0
    assert pauses == [0.25, 0.25]


async def test_a_failing_poll_is_a_warning_and_the_watch_goes_on(
    watched: ScriptedServer, cli: RunCli
) -> None:
    """A poll that fails after its retries (503) is a warning on stderr; the next poll runs."""
    watched.batches[1] = batch(2, "failed")
    watched.fail_lists = 3  # the first attempt and both retries
    with scripted(watched):
        code, out, err = await cli(*against(watched, "--until-finished", "--ids", "batch_000002"))
    assert code == 0
    assert [e["batch"]["status"] for e in events(out)] == ["failed"]
    [warning] = err.splitlines()
    assert warning.startswith("aiobatches: warning: a watch cycle failed; trying again")


async def test_an_api_error_exits_1_with_one_line(watched: ScriptedServer, cli: RunCli) -> None:
    """An error that is not worth retrying (404 here) ends the watch: exit 1, one line."""
    code, out, err = await cli(
        "watch", "--base-url", watched.url + "/nowhere", "--api-key", KEY, "--until-finished"
    )
    assert code == 1
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith("aiobatches: watching batches failed: ")
    assert "status 404" in line


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "last tuesday"),
        ("--since", "nan"),
        ("--interval", "-1"),
        ("--interval", "soon"),
        ("--format", "csv"),
        ("--ids",),
        ("--ids", "a/b"),
    ],
)
async def test_usage_errors_exit_2_before_any_request(
    watched: ScriptedServer, cli: RunCli, args: tuple[str, ...]
) -> None:
    """A bad option value exits 2 with nothing on stdout and no request made."""
    code, out, err = await cli(*against(watched, *args))
    assert code == 2
    assert out == ""
    assert err.strip()
    assert watched.lists == []


def present(item: Mapping[str, Any]) -> dict[str, Any]:
    """A batch's keys that are not null (absent and null mean the same)."""
    return {key: value for key, value in item.items() if value is not None}


def as_read(item: Mapping[str, Any]) -> dict[str, Any]:
    """A server's batch as the client reads it and writes it out again: at every depth, a
    null or absent key is its default (`errors.object` is `"list"`)."""
    (batch,) = parse_page({"data": [item]}).batches
    return present(unstructure_batch(batch))


async def test_on_a_living_server_every_event_says_what_changed(
    make_server: MakeServer, cli: RunCli
) -> None:
    """Over a living day, each event names exactly what changed; the last is the server's state."""
    clock = ManualClock()
    server = await make_server(count=60, api_key=API_KEY, clock=clock)
    with clock.driving_sleeps() as pauses:
        code, out, err = await cli(
            "watch", "--base-url", server.url, "--api-key", API_KEY,
            "--interval", "600", "--until-finished",
        )  # fmt: skip
    assert (code, err) == (0, "")
    assert set(pauses) == {600.0}
    last: dict[str, dict[str, Any]] = {}
    finished: list[str] = []
    for event in events(out):
        item = event["batch"]
        before = last.get(item["id"])
        if before is None:
            assert (event["kind"], event["changes"]) == ("existing", [])
        else:
            assert event["kind"] == "updated"
            differ = {k for k in {*before, *item} if before.get(k) != item.get(k)}
            assert set(event["changes"]) == differ != set()
        # Only the event that reports a finish says so; an "existing" one never does.
        assert event["finished"] == (
            before is not None and item["status"] in FINISHED and before["status"] not in FINISHED
        )
        if event["finished"] or (before is None and item["status"] in FINISHED):
            finished.append(item["id"])
        last[item["id"]] = item
    assert sorted(finished) == sorted(last)
    assert [present(last[item["id"]]) for item in server.batches] == [
        as_read(item) for item in server.batches
    ]
    assert any(event["kind"] == "updated" for event in events(out))


# --- the table, written to a file ------------------------------------------------------------


def frames(text: str) -> list[list[str]]:
    """The frames of the table written to a file: each ends with a blank line."""
    return [frame.splitlines() for frame in text.split("\n\n") if frame]


class Output(io.StringIO):
    """A stdout the test can read while the command writes to it."""


async def drawn(written: Callable[[], str], text: str) -> None:
    """Wait until the last frame written holds `text`: a hang guard, not a timing."""
    for _ in range(3000):
        whole = written()
        if whole.endswith("\n\n") and text in "\n".join(frames(whole)[-1]):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no frame showed {text!r}:\n{written()}")


@pytest.fixture
def table_out(monkeypatch: pytest.MonkeyPatch) -> Output:
    """A file for the table, 100 columns by 20 lines; a test makes it stdout (pytest's own
    capture sets stdout again once the test starts)."""
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "20")
    return Output()


async def test_the_table_shows_unfinished_batches_first_then_the_finished(
    watched: ScriptedServer, cli: RunCli, table_out: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each frame: counts, unfinished batches with progress, then the latest finished, in 100x20."""
    monkeypatch.setattr(sys, "stdout", table_out)
    shown = ["2 unfinished · 1 finished", "3 unfinished · 1 finished"]

    async def before(pause: int) -> None:
        await drawn(table_out.getvalue, shown[min(pause, 1)])

    with scripted(watched, progress, finish, before=before):
        code, _, err = await cli(*against(watched, "--until-finished", "--format", "table"))
    assert (code, err) == (0, ""), err
    every = frames(table_out.getvalue())
    assert all(len(frame) <= 20 for frame in every)
    assert all(len(line) <= 100 for frame in every for line in frame)
    [middle] = [frame for frame in every if shown[1] in frame[0]]
    assert middle[0].startswith("aiobatches watch · 3 unfinished · 1 finished · every 15s")
    assert middle[1].split()[:4] == ["ID", "STATUS", "PROGRESS", "DONE/TOTAL"]
    rows = [line.split() for line in middle[2:]]
    assert [row[:2] for row in rows[:3]] == [
        ["batch_000000", "validating"],
        ["batch_000001", "in_progress"],
        ["batch_000002", "validating"],
    ]
    assert rows[1][3:5] == ["50%", "500/1,000"]
    assert "latest finished" in middle[5]
    assert rows[4][:2] == ["batch_000003", "completed"]
    assert len(middle) == 7
    final = every[-1]
    assert final[0].startswith("aiobatches watch · 0 unfinished · 4 finished")
    assert final[2] == "no unfinished batches"
    finished = [line.split()[0] for line in final[4:]]
    assert sorted(finished) == ["batch_000000", "batch_000001", "batch_000002", "batch_000003"]


def hostile(index: int, status: str) -> dict[str, Any]:
    """A batch whose id and model carry terminal escapes, with counts past 64 bits; an
    unfinished one has an escape in its status too (a status unknown to us is unfinished)."""
    item = batch(index, status)
    item["id"] = f"batch_{index}\x1b[2J\u202e"
    item["status"] = status if status == "completed" else f"{status}\x9b"
    item["model"] = "gpt\x1b]0;pwned\x07"
    item["request_counts"] = {"total": 2**70, "completed": 2**69, "failed": 2**64}
    return item


def page(batches: list[dict[str, Any]]) -> Fault:
    """An answer holding exactly these batches, encoded by the stdlib (orjson stops at 64 bits)."""
    return Fault.respond(200, body=json.dumps(envelope(batches)))


async def test_the_table_neutralises_server_text_and_fits_a_small_terminal(
    make_server: MakeServer, cli: RunCli, table_out: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Server escapes show as text, huge numbers keep the bars whole, and frames fit 60 by 6."""
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("LINES", "6")
    monkeypatch.setattr(sys, "stdout", table_out)
    busy = page([hostile(index, "in_progress") for index in range(5)])
    done = page([hostile(index, "completed") for index in range(5)])
    server = await make_server(
        count=1, api_key=API_KEY, faults=FaultPlan(at={0: busy}, rate=1.0, pool=[done])
    )

    async def before(_: int) -> None:
        await drawn(table_out.getvalue, "5 unfinished")

    with scripted(ScriptedServer([]), before=before):
        code, _, err = await cli(
            "watch", "--base-url", server.url, "--api-key", API_KEY,
            "--format", "table", "--until-finished",
        )  # fmt: skip
    assert (code, err) == (0, "")
    every = frames(table_out.getvalue())
    assert all(len(frame) <= 6 for frame in every)
    assert all(len(line) <= 60 for frame in every for line in frame)
    assert not UNSAFE.search(table_out.getvalue())
    [shown] = [frame for frame in every if "5 unfinished" in frame[0]]
    assert shown[2].startswith("batch_0\\x1b[2J\\u202e")
    assert shown[2].endswith(" 51%")  # (2**69 + 2**64) / 2**70
    assert shown[-1] == "… and 2 more unfinished"
    assert every[-1][0].startswith("aiobatches watch · 0 unfinished · 5 finished")


async def test_the_table_shows_a_failing_poll_on_its_last_line_not_on_stderr(
    watched: ScriptedServer, cli: RunCli, table_out: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll failing after its retries is a warning on the table's last line; the watch goes on."""
    monkeypatch.setattr(sys, "stdout", table_out)
    watched.batches[1] = batch(2, "failed")
    watched.fail_lists = 3
    with scripted(watched):
        code, _, err = await cli(
            *against(watched, "--format", "table", "--until-finished", "--ids", "batch_000002")
        )
    assert (code, err) == (0, "")
    final = frames(table_out.getvalue())[-1]
    assert final[0].startswith("aiobatches watch · 0 unfinished · 1 finished")
    assert re.fullmatch(r"\d\d:\d\d:\d\dZ warning: a watch cycle failed; trying again.*", final[-1])


async def test_the_table_in_ascii_filtered_by_status_on_a_narrow_terminal(
    watched: ScriptedServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--status filters the table and says so; ASCII bars where glyphs cannot go; 10 columns cut."""
    monkeypatch.setenv("LINES", "10")
    monkeypatch.setenv("COLUMNS", "100")
    written = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(written, "ascii", write_through=True))

    async def narrow(_: int) -> None:
        await drawn(lambda: written.getvalue().decode(), "1 unfinished")
        monkeypatch.setenv("COLUMNS", "10")

    with scripted(watched, progress, finish, before=narrow):
        code, _, err = await cli(
            *against(watched, "--format", "table", "--status", "in_progress", "--until-finished")
        )
    assert (code, err) == (0, "")
    every = frames(written.getvalue().decode())
    [shown] = [frame for frame in every if "1 unfinished" in frame[0]]
    assert shown[0].startswith("aiobatches watch | 1 unfinished | 0 finished | every 15s |")
    assert "| status in_progress |" in shown[0]
    row = shown[2].split()
    assert row[:2] == ["batch_000001", "in_progress"]
    assert row[2] == "#" * (len(row[2]) // 10) + "." * (len(row[2]) - len(row[2]) // 10)
    assert every[-1] == ["aiobatche~", "ID", "no unfinis"]


async def test_a_long_history_counts_every_finished_batch_and_shows_the_latest(
    make_server: MakeServer, cli: RunCli, table_out: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more finished batches than fit, the header counts all and the table shows the latest."""
    monkeypatch.setattr(sys, "stdout", table_out)
    batches = [dict(item, status="completed") for item in synthetic_batches(1_200)]
    for index, item in enumerate(batches):  # finished in an order of their own
        item.update(dict.fromkeys(("failed_at", "expired_at", "cancelled_at")))
        item["completed_at"] = item["created_at"] + index * 7_919 % 86_400
    server = await make_server(batches, api_key=API_KEY)
    code, _, _ = await cli(
        "watch", "--base-url", server.url, "--api-key", API_KEY,
        "--format", "table", "--until-finished",
    )  # fmt: skip
    assert code == 0
    final = frames(table_out.getvalue())[-1]
    assert final[0].startswith("aiobatches watch · 0 unfinished · 1,200 finished")
    latest = sorted(batches, key=lambda item: item["completed_at"], reverse=True)
    assert [line.split()[0] for line in final[4:]][:3] == [item["id"] for item in latest][:3]


# --- the board behind the table, over a long watch -------------------------------------------


def board_batch(number: int, status: str, *, ended: int = 0) -> Batch:
    """Batch `number` (a larger number is newer) with `status`; if that is finished, it
    ended `ended` seconds after its creation."""
    created = 1_763_000_000 + number
    return Batch(
        id=f"batch_{number:06d}",
        object="batch",
        endpoint="/v1/chat/completions",
        input_file_id=f"file-in{number}",
        completion_window="24h",
        status=status,
        created_at=created,
        completed_at=created + ended if status in FINISHED else None,
    )


def held(board: Board) -> int:
    """How many items the board's collections hold, whatever they are named."""
    return sum(len(value) for value in vars(board).values() if isinstance(value, dict | set | list))


def test_the_board_stays_bounded_over_100_000_finished_batches() -> None:
    """100,000 batches finish: all are counted, and the board never holds over 1,000 finished."""
    board = Board()
    ends = {number: number * 7_919 % 86_400 for number in range(100_000)}
    largest = 0
    for number, ended in ends.items():
        done = board_batch(number, "completed", ended=ended)
        if number < 50_000:  # the first look: found already finished
            board.see(BatchEvent("existing", done))
        else:
            running = board_batch(number, "in_progress")
            board.see(BatchEvent("created", running))
            board.see(BatchEvent("updated", done, running, ("status", "completed_at")))
        largest = max(largest, held(board))
    assert board.finished_count == 100_000
    assert board.unfinished == {}
    assert largest <= 2 * _board._KEEP_FINISHED
    latest = sorted(ends, key=lambda number: (number + ends[number], number), reverse=True)
    assert [item.id for item in board.latest_finished(3)] == [
        board_batch(number, "completed").id for number in latest[:3]
    ]


STATUSES = st.sampled_from(FINISHED + UNFINISHED)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    steps=st.lists(st.tuples(st.integers(0, 9), STATUSES, st.integers(0, 4)), max_size=60),
    shown=st.sets(STATUSES, max_size=3),
    realistic=st.booleans(),
)
def test_the_board_counts_and_shows_as_if_it_kept_every_batch(
    steps: list[tuple[int, str, int]], shown: set[str], realistic: bool
) -> None:
    """On random histories, a board holding 4 finished batches counts and shows as a full one."""
    # Ties, reorderings, a status filter, even a finished batch changing; the latest finished
    # are compared whenever finished batches never change, as the API promises.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_board, "_KEEP_FINISHED", 2)  # every few events drop some
        board = Board(shown)
        last: dict[str, Batch] = {}
        for index, (number, status, ended) in enumerate(steps):
            now = board_batch(number, status, ended=ended)
            before = last.get(now.id)
            if before == now or (realistic and before is not None and before.is_finished):
                continue  # the watch reports changes only; a finished batch never changes
            if before is None:
                board.see(BatchEvent("existing" if index < 5 else "created", now))
            else:
                board.see(BatchEvent("updated", now, before, ("status",)))
            last[now.id] = now
            kept = [item for item in last.values() if not shown or item.status in shown]
            assert board.finished_count == sum(item.is_finished for item in kept)
            assert board.unfinished == {item.id: item for item in kept if not item.is_finished}
            assert held(board) <= len(board.unfinished) + 4
            if realistic:
                ended_last = sorted(
                    (item for item in kept if item.is_finished),
                    key=lambda item: (item.completed_at, item.created_at, item.id),
                    reverse=True,
                )
                assert board.latest_finished(2) == ended_last[:2]


# --- the layout: one clock, the order of the latest finished, the legend ----------------------

GLYPHS = Glyphs.for_encoding("utf-8")


def text(lines: list[Line]) -> list[str]:
    """A frame's lines as plain text."""
    return ["".join(part for part, _ in line) for line in lines]


def test_every_time_shown_is_the_servers_and_last_change_is_its_latest() -> None:
    """`last change` is the newest time the batches carry, as SINCE and CREATED show times."""
    board = Board()
    board.see(BatchEvent("existing", board_batch(1, "in_progress")))
    board.see(BatchEvent("existing", board_batch(2, "completed", ended=600)))
    frame = text(render(board, 160, 20, interval=1, glyphs=GLYPHS))
    newest = 1_763_000_002 + 600  # batch 2 completed: 2025-11-13 02:23:22Z
    assert frame[0].endswith(" · last change 11-13 02:23Z")
    assert server_time(newest) == "11-13 02:23Z"
    assert frame[1].split()[-2:] == ["MODEL", "CREATED"]
    assert "SINCE" in frame[1].split()
    times = re.findall(r"\d\d-\d\d \d\d:\d\dZ", "\n".join(frame))
    assert set(times) == {"11-13 02:13Z", "11-13 02:23Z"}  # created (both), completed


def test_the_latest_finished_show_when_they_finished_most_recent_first() -> None:
    """Finished rows come most recently finished first, and their SINCE column shows it."""
    board = Board()
    ends = {3: 50, 4: 900, 5: 300, 6: 7_200, 7: 60}  # seen in no order of finishing
    for number, ended in ends.items():
        board.see(BatchEvent("existing", board_batch(number, "completed", ended=ended)))
    frame = text(render(board, 160, 20, interval=1, glyphs=GLYPHS))
    assert frame[2] == "no unfinished batches"
    assert "latest finished" in frame[3]
    rows = frame[4:]
    order = sorted(ends, key=lambda number: 1_763_000_000 + number + ends[number], reverse=True)
    assert [row.split()[0] for row in rows] == [f"batch_{number:06d}" for number in order]
    since = frame[1].index("SINCE")
    shown = [row[since : since + 12] for row in rows]
    assert shown == sorted(shown, reverse=True)
    assert shown[0] == "11-13 04:13Z"  # batch 6, two hours after its creation


def test_a_live_screen_ends_with_a_legend_of_the_bar_and_how_to_quit() -> None:
    """The bottom line explains the bar and Ctrl-C; under 10 rows, every row is for batches."""
    board = Board()
    board.see(BatchEvent("existing", board_batch(1, "in_progress")))
    legend = GLYPHS.legend()
    assert legend == "█ completed  ▒ failed  ░ to do  ·  Ctrl-C to quit"
    frame = text(render(board, 100, 20, interval=1, glyphs=GLYPHS, legend=legend))
    assert len(frame) == 20
    assert frame[-1] == legend
    assert not any(line.strip() for line in frame[3:-1])
    small = text(render(board, 100, 9, interval=1, glyphs=GLYPHS, legend=legend))
    assert legend not in small
    ascii_legend = Glyphs.for_encoding("ascii").legend()
    assert ascii_legend == "# completed  x failed  . to do  |  Ctrl-C to quit"
