"""The command line's writers on hostile batches: control characters and numbers of any size."""

from __future__ import annotations

import csv
import io
import json

import attrs
import pytest
from _helpers import unsafe_for_terminal

from aiobatches import Batch, BatchEvent, BatchRequestCounts, BatchUsage
from aiobatches._cli._output import event_json, make_writer
from aiobatches._cli._terminal import for_terminal
from aiobatches._converter import unstructure_batch
from aiobatches._models import InputTokensDetails, OutputTokensDetails

HOSTILE = "\x1b[2J\r\x07\x08\x9b\u202e\u2066evil\x7f"
"""Clears the screen, returns the carriage, rings, backspaces, opens a CSI, flips the text."""
UNSAFE = unsafe_for_terminal("\n")
"""A character that must not reach a terminal raw (the newline ending each line aside)."""
HUGE = 2**70


def hostile_batch() -> Batch:
    """A batch whose server-given text carries terminal escapes and bidi overrides."""
    return Batch(
        id=f"batch_{HOSTILE}",
        object="batch",
        endpoint=f"/v1/{HOSTILE}",
        input_file_id="file-x",
        completion_window="24h",
        status=f"done{HOSTILE}",
        created_at=1_763_000_000,
        model=f"gpt{HOSTILE}",
        metadata={"note": HOSTILE},
    )


def huge_batch(created_at: int = HUGE) -> Batch:
    """A batch whose timestamps and counts are beyond 64 bits and beyond any calendar."""
    return Batch(
        id="batch_huge",
        object="batch",
        endpoint="/v1/responses",
        input_file_id="file-x",
        completion_window="24h",
        status="completed",
        created_at=created_at,
        completed_at=-HUGE,
        request_counts=BatchRequestCounts(total=HUGE, completed=HUGE - 1, failed=2**64),
        usage=BatchUsage(
            input_tokens=2**80,
            input_tokens_details=InputTokensDetails(cached_tokens=2**65),
            output_tokens=2**90,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=2**100),
            total_tokens=2**80 + 2**90,
        ),
    )


def written(kind: str, batch: Batch, *, terminal: bool | None = None, width: int = 200) -> str:
    """What a writer of `kind` puts out for one batch."""
    out = io.StringIO()
    writer = make_writer(kind, out, None, width=width, terminal=terminal)
    writer.write(batch)
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize(
    ("char", "shown"),
    [
        ("\x1b", "\\x1b"),
        ("\r", "\\r"),
        ("\n", "\\n"),
        ("\x07", "\\x07"),
        ("\x08", "\\x08"),
        ("\x00", "\\x00"),
        ("\x7f", "\\x7f"),
        ("\x9b", "\\x9b"),
        ("\x80", "\\x80"),
        ("\u202a", "\\u202a"),
        ("\u202e", "\\u202e"),
        ("\u2066", "\\u2066"),
        ("\u2069", "\\u2069"),
        ("\u200e", "\\u200e"),
        ("\u200f", "\\u200f"),
        ("\u061c", "\\u061c"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
        ("\ud800", "\\ud800"),
    ],
)
def test_for_terminal_shows_each_control_as_a_visible_escape(char: str, shown: str) -> None:
    """C0, DEL, C1, bidi overrides and isolates, and lone surrogates become escapes."""
    assert for_terminal(f"a{char}b") == f"a{shown}b"


def test_for_terminal_keeps_printable_text() -> None:
    """Letters of any script, punctuation and emoji pass through unchanged."""
    text = "batch_é 日本語 — «ok» ✓ 🚀 \\x1b ~"
    assert for_terminal(text) == text


def test_table_neutralises_every_server_field() -> None:
    """The table shows escapes for the controls in ids, statuses, endpoints and models."""
    table = written("table", hostile_batch())
    assert not UNSAFE.search(table)
    row = table.splitlines()[1]
    assert row.startswith("batch_\\x1b[2J\\r\\x07\\x08\\x9b\\u202e\\u2066evil\\x7f")
    assert "gpt\\x1b[2J" in row


def test_table_neutralises_metadata() -> None:
    """Metadata shown in a table column is neutralised too."""
    out = io.StringIO()
    writer = make_writer("table", out, ["id", "metadata"], width=300)
    writer.write(hostile_batch())
    assert not UNSAFE.search(out.getvalue())
    assert "\\u202e" in out.getvalue()


def test_csv_to_a_terminal_is_neutralised() -> None:
    """csv shown on a terminal carries escapes instead of raw controls."""
    text = written("csv", hostile_batch(), terminal=True)
    assert not UNSAFE.search(text)
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["id"] == for_terminal(f"batch_{HOSTILE}")
    assert "\\u202e" in row["metadata"]


def test_csv_to_a_file_or_pipe_is_exact() -> None:
    """csv written to a file or pipe keeps every character as the server sent it."""
    text = written("csv", hostile_batch(), terminal=False)
    [row] = list(csv.DictReader(io.StringIO(text, newline="")))
    assert row["id"] == f"batch_{HOSTILE}"
    assert row["model"] == f"gpt{HOSTILE}"
    assert json.loads(row["metadata"]) == {"note": HOSTILE}


def test_csv_follows_the_stream_by_default() -> None:
    """Without `terminal`, csv is exact to a stream that is not a terminal."""
    assert HOSTILE in written("csv", hostile_batch())


@pytest.mark.parametrize("kind", ["jsonl", "json"])
def test_json_output_stays_exact_with_controls(kind: str) -> None:
    """JSON output escapes controls itself, so it parses back to the server's exact text."""
    text = written(kind, hostile_batch())
    parsed = json.loads(text) if kind == "jsonl" else json.loads(text)[0]
    assert "\x1b" not in text
    assert parsed["id"] == f"batch_{HOSTILE}"
    assert parsed["metadata"] == {"note": HOSTILE}


CONTROLS = "".join(
    map(
        chr,
        [
            *range(0x20),  # C0 controls, which JSON always escapes
            0x7F,  # DEL
            *range(0x80, 0xA0),  # C1 controls, CSI (0x9b) among them
            0x061C,  # Arabic letter mark
            0x200E,  # left-to-right mark
            0x200F,  # right-to-left mark
            0x2028,  # line separator
            0x2029,  # paragraph separator
            *range(0x202A, 0x202F),  # LRE RLE PDF LRO RLO
            *range(0x2066, 0x206A),  # LRI RLI FSI PDI
        ],
    )
)
"""Every character a terminal obeys, or draws other than it is, beside text: C0 and C1
controls, bidi controls, line and paragraph separators."""


def controls_batch(created_at: int = 1_763_000_000) -> Batch:
    """A hostile batch whose id, metadata keys and metadata values carry each of `CONTROLS`."""
    metadata = {f"key{char}": f"value{char}" for char in CONTROLS}
    metadata["all"] = f"{HOSTILE}{CONTROLS}"
    return attrs.evolve(
        hostile_batch(), id=f"batch_{CONTROLS}", metadata=metadata, created_at=created_at
    )


@pytest.mark.parametrize("kind", ["jsonl", "json"])
@pytest.mark.parametrize(
    "batch",
    [controls_batch(), controls_batch(created_at=HUGE)],
    ids=["orjson", "beyond-64-bits"],
)
def test_json_output_escapes_c1_and_bidi_controls_and_stays_exact(kind: str, batch: Batch) -> None:
    """JSON writes C1, bidi and separator characters as `\\u` escapes that parse back exactly."""
    text = written(kind, batch)
    parsed = json.loads(text) if kind == "jsonl" else json.loads(text)[0]
    assert parsed == json.loads(json.dumps(unstructure_batch(batch)))
    document = text.removeprefix("[\n").removesuffix("\n]\n").removesuffix("\n")
    assert [char for char in CONTROLS if char in document] == []  # the framing's newlines aside
    assert "\\u009b" in text
    assert "\\u202e" in text


def test_watch_events_escape_c1_and_bidi_controls_and_stay_exact() -> None:
    """A watch's JSON events write C1, bidi and separator characters as escapes, exactly."""
    batch = controls_batch()
    text = event_json(BatchEvent("updated", batch, hostile_batch(), ("metadata",)))
    assert json.loads(text)["batch"] == json.loads(json.dumps(unstructure_batch(batch)))
    assert [char for char in CONTROLS if char in text] == []


@pytest.mark.parametrize("stamp", [2**63, HUGE, -HUGE, 253_402_300_800])
def test_table_shows_a_time_beyond_the_calendar_as_its_number(stamp: int) -> None:
    """A created_at no date can hold (past year 9999, beyond 64 bits) is shown whole as a number."""
    row = written("table", huge_batch(stamp)).splitlines()[1]
    assert row.split()[:3] == ["batch_huge", "completed", str(stamp)]


def test_table_formats_counts_of_any_size() -> None:
    """Request counts beyond 64 bits are formatted with separators and clipped to the column."""
    out = io.StringIO()
    make_writer("table", out, ["id", "counts"], width=300).write(huge_batch())
    cell = out.getvalue().splitlines()[1].split()[1]
    assert cell == f"{HUGE - 1:,}"[:28] + "…"


@pytest.mark.parametrize("kind", ["jsonl", "json"])
def test_json_output_of_numbers_beyond_64_bits_is_exact(kind: str) -> None:
    """Integers orjson cannot encode fall back to the stdlib, still compact and exact."""
    text = written(kind, huge_batch())
    parsed = json.loads(text) if kind == "jsonl" else json.loads(text)[0]
    assert parsed["created_at"] == HUGE
    assert parsed["completed_at"] == -HUGE
    assert parsed["request_counts"] == {"total": HUGE, "completed": HUGE - 1, "failed": 2**64}
    assert parsed["usage"]["output_tokens_details"]["reasoning_tokens"] == 2**100
    assert ", " not in text
    assert ": " not in text


def test_fallback_json_keeps_non_ascii_text_raw() -> None:
    """The stdlib fallback writes non-ASCII text as is, as orjson does."""
    out = io.StringIO()
    make_writer("jsonl", out, None).write(attrs.evolve(huge_batch(), model="modèle 日本"))
    assert "modèle 日本" in out.getvalue()
    assert json.loads(out.getvalue())["created_at"] == HUGE


def test_csv_of_numbers_beyond_64_bits_is_exact() -> None:
    """csv cells hold huge numbers whole, nested JSON cells included."""
    out = io.StringIO()
    fields = ["created_at", "request_counts.total", "usage.total_tokens", "created", "counts"]
    make_writer("csv", out, fields).write(huge_batch())
    [row] = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert int(row["created_at"]) == HUGE
    assert int(row["request_counts.total"]) == HUGE
    assert int(row["usage.total_tokens"]) == 2**80 + 2**90
    assert row["created"] == str(HUGE)
    assert row["counts"] == f"{HUGE - 1:,}/{HUGE:,} ({2**64:,} failed)"


def test_very_narrow_table_keeps_ids_whole_and_drops_the_rest() -> None:
    """At 40 columns the table keeps ids and statuses whole, under their headers, and drops
    the time and counts that no longer fit, rather than run past the terminal."""
    batch = huge_batch(1_763_000_000)
    text = written("table", batch, width=40)
    header, row = text.splitlines()
    assert header.split() == ["ID", "STATUS"]
    assert row.split() == ["batch_huge", "completed"]
    assert row.index("completed") == header.index("STATUS")
    assert max(len(header), len(row)) <= 40


@pytest.mark.parametrize("kind", ["jsonl", "json"])
def test_json_output_escapes_a_lone_surrogate(kind: str) -> None:
    """A lone surrogate is written as a `\\ud800` escape: valid UTF-8 that parses back unchanged."""
    text = written(kind, attrs.evolve(huge_batch(), model="gpt\ud800"))
    text.encode()  # would raise on a raw lone surrogate
    parsed = json.loads(text) if kind == "jsonl" else json.loads(text)[0]
    assert parsed["model"] == "gpt\ud800"
    assert "\\ud800" in text
