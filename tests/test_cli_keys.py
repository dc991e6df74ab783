"""Each project's key, as the command line finds it: a bad one is placed (its project, its
variable), two projects that would share one variable are a usage error, and counts of one
are said in the singular."""

from __future__ import annotations

import pytest
from _helpers import RunCli, unsafe_for_terminal

from aiobatches._cli import _listen
from aiobatches._cli._board import Board
from aiobatches._cli._layout import Glyphs, render

NOWHERE = "http://127.0.0.1:9/v1"
"""No request is made: every case here fails before one would be."""


async def test_a_bad_project_key_names_its_project_and_variable(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A control character in $OPENAI_API_KEY_PROJ_A: exit 2, saying whose key and where from."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-shared-0000")
    monkeypatch.setenv("OPENAI_API_KEY_PROJ_A", "sk-\x01bad")
    code, out, err = await cli(
        "list", "--base-url", NOWHERE, "--project", "proj_b", "--project", "proj_a"
    )
    assert (code, out) == (2, "")
    assert "project proj_a (key from $OPENAI_API_KEY_PROJ_A): api_key contains a control" in err
    assert "sk-" not in err
    assert unsafe_for_terminal("\n").search(err) is None


async def test_projects_sharing_a_key_variable_are_a_usage_error(
    cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """proj-a and proj_a both read $OPENAI_API_KEY_PROJ_A: exit 2 naming both and it."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-shared-0000")
    code, out, err = await cli(
        "list", "--base-url", NOWHERE, "--project", "proj-a", "--project", "proj_a"
    )
    assert (code, out) == (2, "")
    assert "--project proj-a and --project proj_a" in err
    assert "$OPENAI_API_KEY_PROJ_A" in err


def test_one_webhook_is_singular() -> None:
    """The watch's header says `1 webhook at`, and `2 webhooks at`."""
    for received, said in [(1, "1 webhook at"), (2, "2 webhooks at")]:
        board = Board()
        board.webhooks = _listen.Tally("http://127.0.0.1:8080/", received=received)
        header = "".join(
            text
            for text, _ in render(
                board, 200, 10, interval=600, glyphs=Glyphs.for_encoding("utf-8")
            )[0]
        )
        assert f"{said} http://127.0.0.1:8080/" in header
