"""What every command shares: its exit codes, the errors that end it with one of them,
and the one way it writes a message (`say`) or marks a failure to write output (`writing`).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import os
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, Final, TextIO, TypeAlias

from attrs import frozen

from .. import APIError
from ._terminal import for_terminal

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""Where a command adds its parser."""

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNSUCCESSFUL: Final = 3
EXIT_TIMEOUT: Final = 124
EXIT_INTERRUPTED: Final = 130
EXIT_TERMINATED: Final = 143
EXIT_CODES: Final = """\
exit codes:
  0    ok
  1    API error, or a failure while running (output cannot be written, the
       port cannot be bound)
  2    usage error: a bad option or option value
  3    wait: a batch finished other than completed (failed, expired, cancelled;
       a Message Batch: its cancellation asked for, or a request expired)
  124  wait: --timeout ran out
  130  interrupted (Ctrl-C)
  143  terminated (SIGTERM, as from `timeout` or `kill`)
"""


class CommandError(Exception):
    """Ends the command with a one-line message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class MergeError(Exception):
    """One project of a merged listing failed: its `error`, and each project's cursor (the
    last batch of it handed out, None if none), for a resume hint that drops no project."""

    def __init__(self, error: APIError, cursors: Mapping[str, str | None]) -> None:
        super().__init__(str(error))
        self.error = error
        self.cursors = dict(cursors)


class OutputError(Exception):
    """Writing the output failed (a full disk, a foreign encoding): the data is incomplete.

    `broken` says the stream itself failed, so what it still buffers can never be written.
    """

    def __init__(self, reason: str, *, broken: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.broken = broken


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Mark an OSError inside as a failure to write output, not, say, to bind a port."""
    try:
        yield
    except BrokenPipeError:
        raise  # the reader left: not a failure (the entry point ends quietly)
    except OSError as error:
        raise OutputError(reason(error), broken=True) from error
    except UnicodeEncodeError as error:  # say, a Latin-1 locale and a model name in Chinese
        why = f"its encoding, {error.encoding}, cannot hold {error.object[error.start]!r}"
        if codecs.lookup(error.encoding).name != "utf-8":  # else a lone surrogate: no cure
            why += "; try PYTHONIOENCODING=utf-8"
        raise OutputError(why, broken=False) from error


def say(message: str) -> None:
    """Print one neutralised `aiobatches: ...` line on stderr, if there is one to write to."""
    err = sys.stderr
    if err is None:  # started with stderr closed: nowhere to report
        return
    try:
        err.write(f"aiobatches: {for_terminal(message)}\n")
        err.flush()
    except (OSError, ValueError):  # stderr is full or gone: nowhere left to report
        silence(err)


def silence(stream: TextIO | None) -> None:
    """Point `stream`'s descriptor at /dev/null, so Python's flush at exit cannot fail again."""
    with contextlib.suppress(OSError, ValueError):  # not a real file: nothing is flushed at exit
        if stream is None:
            return
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


def reason(error: OSError) -> str:
    """The system's short words for an OSError ("No space left on device")."""
    if isinstance(error.errno, int) and error.errno > 0:
        return os.strerror(error.errno)
    return error.strerror or str(error)  # e.g. a failed host name lookup


def on_terminal(stream: TextIO | None) -> TextIO | None:
    """`stream` when it is a terminal (where progress goes), else None."""
    return stream if stream is not None and stream.isatty() else None


@frozen
class Command:
    """One command: `add` gives it its parser (returned, for the usage errors `check` finds
    once every option is read), `run` runs it writing to stdout and stderr (None: closed)
    and returns its exit code."""

    add: Callable[[Commands], argparse.ArgumentParser]
    run: Callable[[argparse.Namespace, TextIO, TextIO | None], Coroutine[Any, Any, int]]
    check: Callable[[argparse.Namespace], str | None] = lambda _: None
