"""`--status` and `--fields` take what the provider's batches have: a value only the other
provider's batches have (or `source` with nothing merged) would print nothing, or a blank
column, so it is a usage error naming the valid values. A usage error quotes what was typed
with its control characters neutralised."""

from __future__ import annotations

from typing import Final

import pytest
from _helpers import RunCli, unsafe_for_terminal

_STATUSES: Final = [
    (("--provider", "anthropic", "--status", "completed"), "in_progress, canceling, ended"),
    (("--status", "ended"), "validating, in_progress"),
    (("--status", "COMPLETED!"), "validating, in_progress"),
]
_FIELDS: Final = [
    (("--provider", "anthropic", "--fields", "id,endpoint,model"), "processing_status"),
    (("--fields", "id,processing_status"), "completion_window"),
    (("--fields", "source,id"), "two or more --project"),
]


@pytest.mark.parametrize(
    ("command", "args", "named"),
    [
        *[("list", *case) for case in [*_STATUSES, *_FIELDS]],
        *[("watch", *case) for case in _STATUSES],
        *[("wait", *case) for case in _FIELDS],
    ],
)
async def test_other_providers_values_are_usage_errors(
    cli: RunCli, command: str, args: tuple[str, ...], named: str
) -> None:
    """The other provider's status or field, or `source` unmerged, exits 2 naming the valid."""
    code, out, err = await cli(command, "--demo", *args)
    assert code == 2
    assert out == ""
    assert named in err
    assert "Traceback" not in err


async def test_a_status_the_api_may_add_is_kept(cli: RunCli) -> None:
    """A status spelled as the API's are, and no provider's yet, filters (here: to nothing)."""
    code, out, err = await cli("list", "--demo", "--status", "paused", "--format", "jsonl")
    assert (code, out, err) == (0, "", "")


async def test_source_with_a_merge_and_own_fields_list(cli: RunCli) -> None:
    """`source` with two projects, and Anthropic's own fields, are taken."""
    code, out, _ = await cli(
        "list", "--demo", "--project", "a", "--project", "b", "--max-items", "2",
        "--format", "csv", "--fields", "source,id,status",
    )  # fmt: skip
    assert code == 0
    assert [line.split(",")[0] for line in out.splitlines()] == ["source", "a", "b"]
    code, out, _ = await cli(
        "list", "--demo", "--provider", "anthropic", "--max-items", "1",
        "--format", "csv", "--fields", "id,processing_status,ended",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines()[0] == "id,processing_status,ended"


async def test_unknown_fields_are_echoed_neutralised(cli: RunCli) -> None:
    """A `--fields` name with escapes is quoted in the usage error with none of them raw."""
    code, out, err = await cli("list", "--demo", "--fields", "id,\x1b]0;T\x07\u202eX")
    assert code == 2
    assert out == ""
    assert unsafe_for_terminal("\n").search(err) is None
    assert r"\x1b]0;T\x07\u202eX" in err
