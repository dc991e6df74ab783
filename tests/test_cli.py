"""The `aiobatches` command, run as a person would: a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aiobatches
from aiobatches.testing import synthetic_batches


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m aiobatches ARGS` and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "aiobatches", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_demo_streams_json_lines() -> None:
    """`aiobatches list --demo --max-items 3` prints three batches as JSON Lines, exit 0."""
    result = run("list", "--demo", "--max-items", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    parsed = [json.loads(line) for line in lines]
    assert [batch["id"] for batch in parsed] == [b["id"] for b in synthetic_batches(3)]
    assert all(batch["object"] == "batch" for batch in parsed)
    assert result.stderr == ""


def test_console_script_is_installed() -> None:
    """The `aiobatches` console script runs the same program as `python -m aiobatches`."""
    script = Path(sys.executable).parent / "aiobatches"
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"aiobatches {aiobatches.__version__}"


def test_limit_out_of_range_is_a_usage_error() -> None:
    """`--limit 500` exits 2 with a message on stderr and nothing on stdout."""
    result = run("list", "--demo", "--limit", "500")
    assert result.returncode == 2
    assert "--limit" in result.stderr
    assert result.stdout == ""


def test_api_error_exits_1_with_one_line() -> None:
    """An unreachable API exits 1 with one line on stderr saying how to resume."""
    result = run(
        "list",
        "--api-key",
        "sk-x",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--after",
        "batch_a",
        env={"OPENAI_API_KEY": ""},
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "--after batch_a" in line
    assert "sk-x" not in line
