"""`aiobatches list --project A --project B`: several OpenAI projects merged into one listing,
newest first, each batch with the project it came from, each project with its own key."""

from __future__ import annotations

import csv
import io
import json

import pytest
from _helpers import API_KEY, MakeServer, RunCli, served_ids

import aiobatches
from aiobatches._cli._main import describe
from aiobatches.testing import FakeBatchesServer

pytestmark = pytest.mark.server(count=30)


@pytest.fixture
async def open_server(make_server: MakeServer) -> FakeBatchesServer:
    """30 batches for any key: which key reached it is read from its request log."""
    return await make_server(count=30)


def merged(server: FakeBatchesServer, *args: str) -> tuple[str, ...]:
    """`list` of projects proj_a and proj_b (in that order) on `server`."""
    return ("list", "--base-url", server.url, "--project", "proj_a", "--project", "proj_b", *args)


def keys_by_project(server: FakeBatchesServer) -> dict[str, set[str]]:
    """The keys each project's requests carried."""
    seen: dict[str, set[str]] = {}
    for request in server.requests:
        project = request.headers.get("OpenAI-Project", "")
        seen.setdefault(project, set()).add(request.headers.get("Authorization", ""))
    return seen


async def test_projects_merge_newest_first_with_ties_in_the_order_given(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """Both projects see the same batches here, so each comes twice: proj_a's first, as
    given, then proj_b's; each line says its source beside the exact batch."""
    code, out, err = await cli(*merged(server, "--api-key", API_KEY))
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["source"], line["id"]) for line in lines] == [
        (project, batch_id) for batch_id in served_ids(server) for project in ("proj_a", "proj_b")
    ]
    assert all(next(iter(line)) == "source" for line in lines)
    _, alone, _ = await cli("list", "--base-url", server.url, "--api-key", API_KEY)
    exact = [json.loads(line) for line in alone.splitlines()]
    assert [{k: v for k, v in line.items() if k != "source"} for line in lines] == [
        batch for batch in exact for _ in (0, 1)
    ]


async def test_the_order_given_breaks_ties(server: FakeBatchesServer, cli: RunCli) -> None:
    """Given proj_b first, proj_b's copy of each batch comes first."""
    code, out, _ = await cli(
        "list", "--base-url", server.url, "--api-key", API_KEY,
        "--project", "proj_b", "--project", "proj_a", "--max-items", "4",
    )  # fmt: skip
    assert code == 0
    sources = [json.loads(line)["source"] for line in out.splitlines()]
    assert sources == ["proj_b", "proj_a", "proj_b", "proj_a"]


async def test_each_project_uses_its_own_key_from_the_environment(
    open_server: FakeBatchesServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPENAI_API_KEY_<PROJECT> (upper-cased, other characters as _) is a project's key when
    set; a project without one uses OPENAI_API_KEY."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-shared")
    monkeypatch.setenv("OPENAI_API_KEY_PROJ_A_1", "sk-a")
    code, _, err = await cli(
        "list", "--base-url", open_server.url, "--project", "proj-a.1", "--project", "proj_b"
    )
    assert (code, err) == (0, "")
    assert keys_by_project(open_server) == {
        "proj-a.1": {"Bearer sk-a"},
        "proj_b": {"Bearer sk-shared"},
    }


async def test_api_key_flag_is_every_projects_key(
    open_server: FakeBatchesServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--api-key` is the key of every project, a project's own variable notwithstanding."""
    monkeypatch.setenv("OPENAI_API_KEY_PROJ_A", "sk-a")
    code, _, _ = await cli(*merged(open_server, "--api-key", "sk-flag"))
    assert code == 0
    assert keys_by_project(open_server) == {
        "proj_a": {"Bearer sk-flag"},
        "proj_b": {"Bearer sk-flag"},
    }


async def test_a_single_project_is_sent_as_today_without_a_source(
    open_server: FakeBatchesServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One --project: its header and its own key, and batches written exactly as ever."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-shared")
    monkeypatch.setenv("OPENAI_API_KEY_PROJ_SOLO", "sk-solo")
    code, out, _ = await cli(
        "list", "--base-url", open_server.url, "--project", "proj_solo", "--max-items", "3"
    )
    assert code == 0
    assert all("source" not in json.loads(line) for line in out.splitlines())
    assert keys_by_project(open_server) == {"proj_solo": {"Bearer sk-solo"}}


async def test_json_array_carries_the_source(server: FakeBatchesServer, cli: RunCli) -> None:
    """`--format json`: the same objects, in one array."""
    code, out, _ = await cli(*merged(server, "--api-key", API_KEY, "--format", "json"))
    assert code == 0
    batches = json.loads(out)
    assert [b["source"] for b in batches[:2]] == ["proj_a", "proj_b"]
    assert len(batches) == 2 * len(server.batches)


async def test_csv_has_the_source_first(server: FakeBatchesServer, cli: RunCli) -> None:
    """csv's first column is the source, by default and in --fields."""
    code, out, _ = await cli(*merged(server, "--api-key", API_KEY, "--format", "csv"))
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["source", "id", "status"]
    assert [row[0] for row in rows[1:5]] == ["proj_a", "proj_b", "proj_a", "proj_b"]
    code, out, _ = await cli(
        *merged(server, "--api-key", API_KEY, "--format", "csv", "--fields", "id,source")
    )
    assert code == 0
    assert out.splitlines()[:2] == ["id,source", f"{served_ids(server)[0]},proj_a"]


async def test_table_has_the_source_first(
    server: FakeBatchesServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table's first column is SOURCE."""
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = await cli(
        *merged(server, "--api-key", API_KEY, "--format", "table", "--max-items", "2")
    )
    assert code == 0
    header, first, second = out.splitlines()
    assert header.split()[:3] == ["SOURCE", "ID", "STATUS"]
    assert first.split()[:2] == ["proj_a", served_ids(server)[0]]
    assert second.split()[:2] == ["proj_b", served_ids(server)[0]]


async def test_filters_and_max_items_apply_to_the_merged_listing(
    server: FakeBatchesServer, cli: RunCli
) -> None:
    """--status and --max-items count the merged listing, not each project's."""
    code, out, _ = await cli(
        *merged(server, "--api-key", API_KEY, "--status", "completed", "--max-items", "5")
    )
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 5
    assert {line["status"] for line in lines} == {"completed"}
    completed = [b["id"] for b in server.batches if b["status"] == "completed"]
    assert [line["id"] for line in lines] == [batch_id for batch_id in completed for _ in (0, 1)][
        :5
    ]


async def test_an_error_names_its_project(
    make_server: MakeServer, cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project whose key is refused ends the listing with exit 1, naming that project."""
    server = await make_server(count=30, api_key=API_KEY)
    monkeypatch.setenv("OPENAI_API_KEY_PROJ_A", API_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-0000")
    code, _, err = await cli(*merged(server))
    assert code == 1
    assert "project proj_b: listing batches failed" in err
    assert "status 401" in err
    assert "sk-wrong" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--after", "batch_x"), "single --project"),
        (("--project", "proj_a"), "given twice"),
    ],
)
async def test_what_a_merge_cannot_do_is_a_usage_error(
    server: FakeBatchesServer, cli: RunCli, args: tuple[str, ...], says: str
) -> None:
    """A cursor names one project's batch; a project given twice is a mistake: exit 2."""
    code, out, err = await cli(*merged(server, "--api-key", API_KEY, *args))
    assert (code, out) == (2, "")
    assert says in err


@pytest.mark.parametrize("command", ["wait", "watch"])
async def test_only_list_merges_projects(cli: RunCli, command: str) -> None:
    """wait and watch take one project: several are a usage error."""
    code, _, err = await cli(command, "--demo", "--project", "proj_a", "--project", "proj_b")
    assert code == 2
    assert "only in `aiobatches list`" in err


async def test_a_project_id_a_terminal_would_act_on_is_refused(cli: RunCli) -> None:
    """A project id with a control character is a usage error, shown neutralised."""
    code, _, err = await cli("list", "--demo", "--project", "proj_\x1b[2J")
    assert code == 2
    assert "\x1b" not in err
    assert "project id" in err


async def test_the_demo_shows_the_merge(cli: RunCli) -> None:
    """`--demo` with several projects merges them against the one demo server."""
    code, out, err = await cli(
        "list", "--demo", "--project", "proj_a", "--project", "proj_b", "--max-items", "6"
    )
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["source"] for line in lines] == ["proj_a", "proj_b"] * 3
    assert [line["id"] for line in lines[::2]] == [line["id"] for line in lines[1::2]]


def test_a_failed_projects_resume_hint_lists_it_alone() -> None:
    """A merged listing's error names its project and how to resume that project alone."""
    error = aiobatches.InternalServerError(
        "500 Internal Server Error", status_code=500, cursor="batch_abc"
    )
    error.source = "proj b"
    assert describe(error, "list") == (
        "project proj b: listing batches failed: Internal Server Error; status 500;"
        " resume with --project 'proj b' --after batch_abc"
    )
