"""A merged listing whose project fails says how to list the rest of every project, not
only of the one that failed: the others' batches not yet shown would be lost otherwise."""

from __future__ import annotations

import json
from typing import Any

from _helpers import API_KEY, LoopbackServer, RunCli
from _scripted import batch
from aiohttp import web

import aiobatches
from aiobatches._cli._main import describe


class _Projects(LoopbackServer):
    """Each project's batches by the OpenAI-Project header, pages of two; the second page
    of `proj_bad` answers 400, which is not retried."""

    def __init__(self) -> None:
        self.batches: dict[str, list[dict[str, Any]]] = {
            "proj_a": [batch(index, "completed") for index in range(0, 12, 2)],
            "proj_bad": [batch(index, "completed") for index in range(1, 12, 2)],
        }

    async def _list(self, request: web.Request) -> web.Response:
        project = request.headers["OpenAI-Project"]
        held = self.batches[project]
        after = request.query.get("after")
        start = 0 if after is None else [item["id"] for item in held].index(after) + 1
        if project == "proj_bad" and start > 0:
            return web.json_response(
                {"error": {"message": "bad request", "type": "invalid_request_error"}},
                status=400,
            )
        page = held[start : start + 2]
        return web.json_response(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": start + 2 < len(held),
            }
        )


async def test_a_failed_merge_says_where_to_resume_every_project(cli: RunCli) -> None:
    """proj_bad fails on its second page: exit 1, and a resume command for each project,
    after the last batch of it written, which lists exactly what was not."""
    async with _Projects() as server:
        code, out, err = await cli(
            "list", "--base-url", server.url, "--api-key", API_KEY, "--limit", "2",
            "--project", "proj_a", "--project", "proj_bad",
        )  # fmt: skip
        assert code == 1
        written = [json.loads(line) for line in out.splitlines()]
        last = {
            project: [row["id"] for row in written if row["source"] == project][-1]
            for project in ("proj_a", "proj_bad")
        }
        assert "project proj_bad: listing batches failed" in err
        assert "status 400" in err
        for project, after in last.items():
            assert f"aiobatches list --project {project} --after {after}" in err
        # Resuming proj_a there lists exactly its batches not written.
        code, rest, _ = await cli(
            "list", "--base-url", server.url, "--api-key", API_KEY,
            "--project", "proj_a", "--after", last["proj_a"],
        )  # fmt: skip
        assert code == 0
        shown = [row["id"] for row in written if row["source"] == "proj_a"]
        assert shown + [json.loads(line)["id"] for line in rest.splitlines()] == [
            item["id"] for item in server.batches["proj_a"]
        ]
        assert rest  # proj_a had batches left that the merge never showed


def test_a_project_with_nothing_shown_is_listed_from_its_start() -> None:
    """A project none of whose batches was shown resumes from its start, and a malformed
    batch's project past that batch."""
    error = aiobatches.APIResponseValidationError("bad batch", cursor="batch_1", batch_id="batch_2")
    error.source = "proj b"
    hint = describe(error, "list", {"proj_a": "batch_9", "proj b": "batch_1", "proj_c": None})
    assert hint.endswith(
        "list the rest of each project on its own (with the same other options):"
        " aiobatches list --project proj_a --after batch_9,"
        " aiobatches list --project 'proj b' --after batch_2,"
        " aiobatches list --project proj_c"
    )
