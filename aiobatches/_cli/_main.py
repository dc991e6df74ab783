"""The `aiobatches` program: parse, run one command, and end it with its exit code.

Everything about the process lives here: Ctrl-C (130) and SIGTERM (143) after the
command's cleanup, a reader that leaves (`| head`), output that cannot be written,
and every expected failure turned into one `aiobatches: ...` line, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import signal
import sys
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from typing import Any, Final

from .. import AIOBatchesError, APIError, APIStatusError
from . import _list, _serve, _wait, _watch
from ._common import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Command,
    CommandError,
    MergeError,
    OutputError,
    say,
    silence,
    writing,
)

_COMMANDS: Final[dict[str, Command]] = {
    "list": _list.COMMAND,
    "wait": _wait.COMMAND,
    "watch": _watch.COMMAND,
    "serve": _serve.COMMAND,
}
_DOING: Final = {"list": "listing", "wait": "waiting for", "watch": "watching"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    try:
        code = _run(argv)
    except SystemExit as done:  # argparse, after --help, --version or a usage error
        code = done.code if isinstance(done.code, int) else EXIT_USAGE
    # The last resort, so that not even a bug of ours ends in a traceback; a
    # stray CancelledError (a BaseException) would be such a bug.
    except (Exception, asyncio.CancelledError) as error:  # noqa: BLE001
        say(f"unexpected error: {type(error).__name__}: {error} (please report this)")
        code = EXIT_FAILED
    if sys.stdout is not None:
        # Flush now, while a failure can still be reported, rather than at exit.
        try:
            with writing():
                sys.stdout.flush()
        except BrokenPipeError:
            silence(sys.stdout)
        except OutputError as failed:
            return _output_failed(failed)
    return code


def _run(argv: Sequence[str] | None) -> int:  # noqa: PLR0911 - one return per way to end
    """Parse and run one command, turning every expected failure into its exit code."""
    args = _parse(argv)
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        say("stdout is closed; there is nowhere to write")
        return EXIT_FAILED
    command = _COMMANDS[args.command]
    try:
        with _warnings_shown():
            return asyncio.run(_terminable(command.run(args, sys.stdout, sys.stderr)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        silence(sys.stdout)
        return EXIT_OK
    except OutputError as failed:
        return _output_failed(failed)
    except CommandError as error:
        say(error.message)
        return error.code
    except MergeError as failed:
        say(describe(failed.error, args.command, failed.cursors))
        return EXIT_FAILED
    except AIOBatchesError as error:
        say(describe(error, args.command) if isinstance(error, APIError) else str(error))
        return EXIT_FAILED


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The options of one command, each value read and checked; a usage error exits 2."""
    from .. import __version__  # noqa: PLC0415 - read from the metadata only when parsing

    parser = argparse.ArgumentParser(
        prog="aiobatches",
        description="Stream, wait for and watch OpenAI batch jobs and Anthropic Message Batches.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parsers = {name: command.add(commands) for name, command in _COMMANDS.items()}
    args = parser.parse_args(argv)
    problem = _COMMANDS[args.command].check(args)
    if problem is not None:
        parsers[args.command].error(problem)
    return args


async def _terminable(command: Coroutine[Any, Any, int]) -> int:
    """Run `command`, which SIGTERM cancels, so that its cleanup runs (the terminal given
    back, the client closed) before the program exits 143, as a process killed by it would.

    The handler is the running loop's, for as long as the command runs; the one there
    before (Python's default, or an embedding program's) is put back afterwards.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None  # asyncio.run runs this in a task
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        if not terminated:  # a second SIGTERM does not cut the cleanup short
            terminated = True
            task.cancel()

    previous = signal.getsignal(signal.SIGTERM)
    try:
        loop.add_signal_handler(signal.SIGTERM, terminate)
    except (RuntimeError, NotImplementedError):  # not the main thread (main() in a test), Windows
        return await command
    try:
        return await command
    except asyncio.CancelledError:
        if not terminated:
            raise
        task.uncancel()  # the cancellation was ours, and it ends here as an exit code
        return EXIT_TERMINATED
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        if previous is not None:  # None: a handler not set from Python, which cannot be restored
            signal.signal(signal.SIGTERM, previous)


def describe(error: APIError, command: str, cursors: Mapping[str, str | None] | None = None) -> str:
    """One line: what failed and why, the status and request id when known, and (for
    `list`) where to resume, each said once; of a merge, the project that failed first,
    and with the merge's `cursors` where to resume each of its projects."""
    project = getattr(error, "source", None)  # set by the merge of several projects
    whose = f"project {project}: " if isinstance(project, str) else ""
    parts = [f"{whose}{_DOING.get(command, 'listing')} batches failed: {_why(error)}"]
    status = getattr(error, "status_code", None)
    request_id = getattr(error, "request_id", None)
    # The malformed batch: resuming after the cursor would only meet it again.
    invalid = getattr(error, "batch_id", None)
    if status is not None:
        parts.append(f"status {status}")
    if request_id:
        parts.append(f"request id {request_id}")
    if command != "list":  # waits and watches start over; there is no cursor to give
        return "; ".join(parts)
    if cursors and isinstance(project, str):
        parts.append(_resume_each(project, error.cursor, invalid, cursors))
        return "; ".join(parts)
    alone = (
        f"--project {shlex.quote(project)} " if isinstance(project, str) else ""
    )  # a cursor is one project's
    if isinstance(invalid, str):
        parts.append(
            f"resume with {alone}--after {shlex.quote(invalid)} to skip past it,"
            " or list with --skip-invalid"
        )
    elif error.cursor:
        parts.append(f"resume with {alone}--after {shlex.quote(error.cursor)}")
    else:
        parts.append("nothing to resume")
    return "; ".join(parts)


def _resume_each(
    failed: str, cursor: str | None, invalid: object, cursors: Mapping[str, str | None]
) -> str:
    """How to list the rest of every project of a failed merge, each on its own (a cursor
    is one project's): after its last batch shown, or from its start if none was."""
    commands = []
    for project, shown in cursors.items():
        after = shown
        if project == failed:
            # past a malformed batch, as resuming before it would meet it again
            after = invalid if isinstance(invalid, str) else (cursor or shown)
        resume = f" --after {shlex.quote(after)}" if after else ""
        commands.append(f"aiobatches list --project {shlex.quote(project)}{resume}")
    return "list the rest of each project on its own (with the same other options): " + ", ".join(
        commands
    )


def _why(error: APIError) -> str:
    """The error's message as a clause: without the status its line gives apart (a status
    error's message begins "404 Not Found: ..."), nor a full stop before the next part."""
    message = error.message.strip()
    if isinstance(error, APIStatusError):
        status = str(error.status_code)
        if message.startswith(f"{status} "):
            # "404 Not Found: detail" says the detail; "404 Not Found" alone, its reason.
            head, colon, detail = message.partition(": ")
            message = detail if colon and detail.strip() else head.removeprefix(status).strip()
    return message.removesuffix(".") or "no reason given"


def _output_failed(failed: OutputError) -> int:
    if failed.broken:
        silence(sys.stdout)
    say(f"cannot write output: {failed.reason}")
    return EXIT_FAILED


class _WarningLines(logging.Handler):
    """Shows the library's warnings (a skipped batch, say) as `aiobatches: warning:` lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        say(f"warning: {record.getMessage()}")


@contextlib.contextmanager
def _warnings_shown() -> Iterator[None]:
    """Show the library's warnings on stderr for one run; `main` may be called again."""
    logger = logging.getLogger("aiobatches")
    handler = _WarningLines()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
