"""SIGTERM, as `timeout` and `kill` send it, ends every command in a real child process with
exit 143 after the command's own cleanup: no traceback, no warning of anything left open,
progress cleared from the terminal, and the handler that was there before put back.
(Ctrl-C's 130 is in test_cli.py; watch's alternate screen in test_cli_watch_terminal.py.)"""

from __future__ import annotations

import asyncio
import os
import pty
import sys
import textwrap
from collections.abc import Awaitable, Callable
from typing import Final

import pytest
from _helpers import API_KEY, COMMAND, MakeServer, child_env, read_pty
from _scripted import KEY, ScriptedServer, batch

from aiobatches._cli import main
from aiobatches.testing import Fault

TERMINATED: Final = 143
CLEARED: Final = b"\r\x1b[K"
"""What a progress line is cleared with."""


async def until(condition: Callable[[], bool]) -> None:
    """Wait for what a child does over real I/O: a hang guard of thirty seconds, not a timing."""
    async with asyncio.timeout(30):
        while not condition():
            await asyncio.sleep(0.02)


async def terminate(process: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    """Send SIGTERM and collect what the process still writes to its pipes."""
    process.terminate()
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    return out or b"", err or b""


async def start(*args: str, stderr: int = asyncio.subprocess.PIPE) -> asyncio.subprocess.Process:
    """`aiobatches ARGS` in a child process, stdout piped."""
    return await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env=child_env(),
    )


async def lines(process: asyncio.subprocess.Process, count: int) -> list[bytes]:
    """The first `count` lines the process writes to stdout."""
    assert process.stdout is not None
    async with asyncio.timeout(30):
        return [await process.stdout.readline() for _ in range(count)]


async def test_list_ends_143_with_every_batch_it_wrote_whole(make_server: MakeServer) -> None:
    """SIGTERM while a page is pending: exit 143, the batches before it whole, stderr silent."""
    server = await make_server(count=60, api_key=API_KEY, faults={1: Fault.stall(60)})
    process = await start("list", "--base-url", server.url, "--api-key", API_KEY, "--limit", "20")
    first = await lines(process, 20)
    await until(lambda: len(server.page_requests) == 2)
    out, err = await terminate(process)
    assert process.returncode == TERMINATED
    assert (out, err) == (b"", b"")
    assert all(line.endswith(b"}\n") for line in first)


async def test_list_on_a_terminal_clears_its_progress(make_server: MakeServer) -> None:
    """SIGTERM with progress on a terminal's stderr: exit 143, the progress line cleared."""
    server = await make_server(count=60, api_key=API_KEY, faults={1: Fault.stall(60)})
    master, slave = pty.openpty()
    process = await start(
        "list", "--base-url", server.url, "--api-key", API_KEY, "--limit", "20", stderr=slave
    )
    os.close(slave)
    shown = asyncio.get_running_loop().run_in_executor(None, read_pty, master)
    try:
        await lines(process, 20)
        await until(lambda: len(server.page_requests) == 2)
        await terminate(process)
        async with asyncio.timeout(30):
            err = await shown
    finally:
        os.close(master)
    assert process.returncode == TERMINATED
    assert b"20 batches, 1 page," in err
    assert err.endswith(CLEARED)
    assert b"Traceback" not in err


@pytest.fixture
async def unfinished(make_scripted: Callable[..., Awaitable[ScriptedServer]]) -> ScriptedServer:
    """A scripted server with one batch that stays in progress."""
    return await make_scripted([batch(1, "in_progress", done=100)])


def polled(server: ScriptedServer) -> bool:
    return bool(server.lists or server.retrievals)


async def test_wait_ends_143_and_clears_its_progress(unfinished: ScriptedServer) -> None:
    """SIGTERM between a wait's polls: exit 143, its progress on the terminal cleared."""
    master, slave = pty.openpty()
    process = await start(
        "wait", "batch_000001", "--base-url", unfinished.url, "--api-key", KEY,
        "--interval", "60", stderr=slave,
    )  # fmt: skip
    os.close(slave)
    shown = asyncio.get_running_loop().run_in_executor(None, read_pty, master)
    try:
        await until(lambda: polled(unfinished))
        out, _ = await terminate(process)
        async with asyncio.timeout(30):
            err = await shown
    finally:
        os.close(master)
    assert process.returncode == TERMINATED
    assert out == b""
    assert b"waiting: 0 of 1 batches finished" in err
    assert err.endswith(CLEARED)
    assert b"Traceback" not in err


async def test_piped_watch_ends_143(unfinished: ScriptedServer) -> None:
    """SIGTERM while a piped watch rests between polls: exit 143, stderr silent."""
    process = await start(
        "watch", "--base-url", unfinished.url, "--api-key", KEY, "--interval", "60"
    )
    [event] = await lines(process, 1)
    out, err = await terminate(process)
    assert process.returncode == TERMINATED
    assert (out, err) == (b"", b"")
    assert b'"kind":"existing"' in event


async def test_serve_ends_143() -> None:
    """SIGTERM to `serve`: exit 143 once the server is closed, stderr silent."""
    process = await start("serve", "--count", "5")
    [url] = await lines(process, 1)
    out, err = await terminate(process)
    assert url.startswith(b"http://127.0.0.1:")
    assert process.returncode == TERMINATED
    assert (out, err) == (b"", b"")


EMBEDDED: Final = textwrap.dedent(
    """
    import signal, sys
    from aiobatches._cli import main

    def own(signum, frame):
        sys.exit(99)

    signal.signal(signal.SIGTERM, own)
    code = main(sys.argv[1:])
    print(code, signal.getsignal(signal.SIGTERM) is own, flush=True)
    """
)


async def test_a_programs_own_handler_is_put_back(make_server: MakeServer) -> None:
    """`main()` inside a program with its own SIGTERM handler: 143, then that handler is back."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", EMBEDDED, "serve", "--count", "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=child_env(),
    )  # fmt: skip
    await lines(process, 1)  # the URL: serving, with the command's handler in place
    out, err = await terminate(process)
    assert process.returncode == 0
    assert out.split() == [b"143", b"True"]
    assert err == b""


def test_the_help_lists_143(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command's `--help` says 143 means terminated by SIGTERM."""
    for command in ("list", "wait", "watch", "serve"):
        assert main([command, "--help"]) == 0
        assert "143  terminated (SIGTERM" in capsys.readouterr().out
