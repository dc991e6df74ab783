"""The `aiobatches` command: `list` streams batches, `serve` runs the fake server.

Data goes to stdout only; progress and messages go to stderr (progress only
on a terminal), each message one `aiobatches: ...` line with server text
neutralised. Nothing ends in a traceback; `--help` lists the exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import datetime
import logging
import math
import os
import shlex
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TextIO

from ._client import MAX_PAGE_SIZE, Client
from ._errors import AIOBatchesError, APIError
from ._models import Batch
from ._output import FORMATS, Progress, field_names, make_writer
from ._terminal import for_terminal
from ._version import version

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_EXIT_CODES = """\
exit codes:
  0    ok
  1    API error, or a failure while running (output cannot be written, the
       port cannot be bound)
  2    usage error: a bad option or option value
  130  interrupted
"""
_DEMO_KEY = "sk-demo"
_MAX_PORT = 65_535
_MAX_LATENCY_MS = 3_600_000

_LIST_HELP = """\
Stream batches, newest first. On a terminal they are shown as a table with
progress on stderr; piped, they are written as JSON Lines.

Filters run on this side (the API has none): --status, --created-after and
--created-before. Because the API lists newest first, --created-after stops
fetching at the first older batch: later pages can only hold older ones.
--max-items counts batches after filtering.
"""


class _CommandError(Exception):
    """Ends the command with a one-line message and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _OutputError(Exception):
    """Writing the output failed (a full disk, a foreign encoding): the data is incomplete.

    `broken` says the stream itself failed, so what it still buffers can never be written.
    """

    def __init__(self, reason: str, *, broken: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.broken = broken


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    try:
        code = _run(argv)
    except SystemExit as done:  # argparse, after --help, --version or a usage error
        code = done.code if isinstance(done.code, int) else EXIT_USAGE
    # The last resort, so that not even a bug of ours ends in a traceback; a
    # stray CancelledError (a BaseException) would be such a bug.
    except (Exception, asyncio.CancelledError) as error:  # noqa: BLE001
        _say(f"unexpected error: {type(error).__name__}: {error} (please report this)")
        code = EXIT_FAILED
    if sys.stdout is not None:
        # Flush now, while a failure can still be reported, rather than at exit.
        try:
            with _writing():
                sys.stdout.flush()
        except BrokenPipeError:
            _silence(sys.stdout)
        except _OutputError as failed:
            return _output_failed(failed)
    return code


def _run(argv: Sequence[str] | None) -> int:  # noqa: PLR0911 - one return per way to end
    """Parse and run one command, turning every expected failure into its exit code."""
    args = _parser().parse_args(argv)
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        _say("stdout is closed; there is nowhere to write")
        return EXIT_FAILED
    try:
        with _warnings_shown():
            if args.command == "serve":
                return asyncio.run(_serve(args))
            return asyncio.run(_list(args, sys.stdout, sys.stderr))
    except KeyboardInterrupt:
        return EXIT_OK if args.command == "serve" else EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        _silence(sys.stdout)
        return EXIT_OK
    except _OutputError as failed:
        return _output_failed(failed)
    except _CommandError as error:
        _say(error.message)
        return error.code
    except AIOBatchesError as error:
        _say(_describe(error) if isinstance(error, APIError) else str(error))
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiobatches",
        description="Stream an organization's OpenAI batch jobs.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser(
        "list",
        help="stream batches, newest first",
        description=_LIST_HELP,
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = listing.add_argument_group("where to list from")
    source.add_argument(
        "--demo", action="store_true", help="list from an embedded fake server (no API key needed)"
    )
    source.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL or OpenAI's)")
    source.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY); never printed")
    source.add_argument(
        "--proxy",
        help="proxy URL (default: $HTTPS_PROXY or $HTTP_PROXY, minus $NO_PROXY; not for --demo)",
    )
    paging = listing.add_argument_group("paging")
    paging.add_argument(
        "--limit",
        type=_whole(1, MAX_PAGE_SIZE),
        default=MAX_PAGE_SIZE,
        help="page size, 1-100 (default 100)",
    )
    paging.add_argument("--after", help="resume after this batch id")
    paging.add_argument(
        "--prefetch", type=_count, default=1, help="pages fetched ahead (0: sequential; default 1)"
    )
    paging.add_argument("--max-items", type=_count, help="stop after this many batches (filtered)")
    paging.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip a malformed batch with a warning instead of stopping there",
    )
    filters = listing.add_argument_group("filters (client-side)")
    filters.add_argument(
        "--status", action="append", metavar="STATUS", help="keep this status (repeatable)"
    )
    filters.add_argument(
        "--created-after",
        type=_moment,
        metavar="WHEN",
        help="keep batches created at or after WHEN (ISO date/time, UTC if no zone, or Unix"
        " seconds); fetching stops at the first older batch",
    )
    filters.add_argument(
        "--created-before", type=_moment, metavar="WHEN", help="keep batches created before WHEN"
    )
    output = listing.add_argument_group("output")
    output.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: table on a terminal, jsonl when piped)",
    )
    output.add_argument(
        "--fields",
        type=_fields,
        help=f"comma-separated columns for table and csv; one of: {', '.join(field_names())}",
    )
    serve = commands.add_parser(
        "serve",
        help="run the fake list-batches server",
        description="Run FakeBatchesServer until Ctrl-C; prints its base URL on stdout.",
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_whole(0, _MAX_PORT), default=0, help="port, 0-65535 (default 0: any free)"
    )
    serve.add_argument("--count", type=_count, default=250, help="batches to serve (default 250)")
    serve.add_argument("--seed", type=int, default=0, help="seed of the synthetic batches")
    serve.add_argument(
        "--latency-ms",
        type=_whole(0, _MAX_LATENCY_MS),
        default=0,
        help="delay of each page in ms, up to an hour",
    )
    serve.add_argument("--api-key", help="require this Bearer key")
    return parser


async def _list(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Stream, filter and write batches; flushes after every page."""
    kind = args.format or ("table" if out.isatty() else "jsonl")
    progress = Progress(err) if err is not None and err.isatty() else None
    keep = _filter(args)
    filtered = bool(args.status or args.created_after is not None or args.created_before)
    written = 0
    async with _client(args) as client:
        stream = client.list_batches(
            limit=args.limit,
            after=args.after,
            prefetch=args.prefetch,
            max_items=None if filtered else args.max_items,
            on_invalid="skip" if args.skip_invalid else "raise",
        )
        try:
            async with stream:
                with _writing():
                    writer = make_writer(kind, out, args.fields)
                async for page in stream.pages():
                    with _writing():
                        done = False
                        for batch in page.data:
                            if written == args.max_items or (
                                args.created_after is not None
                                and batch.created_at < args.created_after
                            ):  # enough, or (newest first) every later batch is older
                                done = True
                                break
                            if keep(batch):
                                writer.write(batch)
                                written += 1
                        out.flush()
                        if progress is not None:
                            progress.page(len(page.data))
                    if done or written == args.max_items:
                        break  # leaving `async with stream` requests no page nobody needs
                with _writing():
                    writer.close()
                    out.flush()
                    if progress is not None:
                        progress.close()
        finally:
            _report_skipped(stream.skipped)
    return EXIT_OK


def _report_skipped(skipped: Sequence[object]) -> None:
    """Sum up the batches `--skip-invalid` left out; each had its own warning."""
    if skipped:
        plural = "batch" if len(skipped) == 1 else "batches"
        _say(f"skipped {len(skipped)} invalid {plural} (see the warnings above)")


def _filter(args: argparse.Namespace) -> Callable[[Batch], bool]:
    """The status and --created-before test a batch must pass to be written."""
    statuses = set(args.status or ())
    before = args.created_before

    def keep(batch: Batch) -> bool:
        if statuses and batch.status not in statuses:
            return False
        return before is None or batch.created_at < before

    return keep


@contextlib.asynccontextmanager
async def _client(args: argparse.Namespace) -> AsyncIterator[Client]:
    """The client to list with: against an embedded fake server with `--demo`."""
    if not args.demo:
        try:
            client = Client(api_key=args.api_key, base_url=args.base_url, proxy=args.proxy)
        except (AIOBatchesError, ValueError, TypeError) as error:  # a bad key, URL or proxy
            raise _CommandError(str(error), EXIT_USAGE) from None
        async with client:
            yield client
        return
    from .testing import FakeBatchesServer  # noqa: PLC0415 - aiohttp.web only for the demo

    async with (
        FakeBatchesServer(api_key=_DEMO_KEY) as server,
        Client(api_key=_DEMO_KEY, base_url=server.url) as client,
    ):
        yield client


async def _serve(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from .testing import FakeBatchesServer  # noqa: PLC0415 - aiohttp.web only when serving

    server = FakeBatchesServer(
        count=args.count,
        seed=args.seed,
        api_key=args.api_key,
        latency=args.latency_ms / 1000,
        host=args.host,
        port=args.port,
    )
    try:
        await server.start()
    except OSError as error:  # in use, not ours to bind, or an unknown host
        address = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
        raise _CommandError(f"cannot serve on {address}: {_reason(error)}", EXIT_FAILED) from None
    try:
        with _writing():
            print(server.url, flush=True)
        if sys.stderr is not None and sys.stderr.isatty():
            print("serving; press Ctrl-C to stop", file=sys.stderr, flush=True)
        await asyncio.Event().wait()
    finally:
        await server.close()
    return EXIT_OK  # pragma: no cover - only Ctrl-C ends the wait


def _describe(error: APIError) -> str:
    """One line: what failed, status and request id when known, and where to resume."""
    parts = [f"listing batches failed: {error.message}"]
    status = getattr(error, "status_code", None)
    request_id = getattr(error, "request_id", None)
    # The malformed batch: resuming after the cursor would only meet it again.
    invalid = getattr(error, "batch_id", None)
    if status is not None:
        parts.append(f"status {status}")
    if request_id:
        parts.append(f"request id {request_id}")
    if isinstance(invalid, str):
        parts.append(
            f"resume with --after {shlex.quote(invalid)} to skip past it,"
            " or list with --skip-invalid"
        )
    elif error.cursor:
        parts.append(f"resume with --after {shlex.quote(error.cursor)}")
    else:
        parts.append("nothing to resume")
    return "; ".join(parts)


@contextlib.contextmanager
def _writing() -> Iterator[None]:
    """Mark an OSError inside as a failure to write output, not, say, to bind a port."""
    try:
        yield
    except BrokenPipeError:
        raise  # the reader left: not a failure (see `_run`)
    except OSError as error:
        raise _OutputError(_reason(error), broken=True) from error
    except UnicodeEncodeError as error:  # say, a Latin-1 locale and a model name in Chinese
        reason = f"its encoding, {error.encoding}, cannot hold {error.object[error.start]!r}"
        if codecs.lookup(error.encoding).name != "utf-8":  # else a lone surrogate: no cure
            reason += "; try PYTHONIOENCODING=utf-8"
        raise _OutputError(reason, broken=False) from error


def _output_failed(failed: _OutputError) -> int:
    if failed.broken:
        _silence(sys.stdout)
    _say(f"cannot write output: {failed.reason}")
    return EXIT_FAILED


def _say(message: str) -> None:
    """Print one neutralised `aiobatches: ...` line on stderr, if there is one to write to."""
    err = sys.stderr
    if err is None:  # started with stderr closed: nowhere to report
        return
    try:
        err.write(f"aiobatches: {for_terminal(message)}\n")
        err.flush()
    except (OSError, ValueError):  # stderr is full or gone: nowhere left to report
        _silence(err)


def _silence(stream: TextIO | None) -> None:
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


def _reason(error: OSError) -> str:
    """The system's short words for an OSError ("No space left on device")."""
    if isinstance(error.errno, int) and error.errno > 0:
        return os.strerror(error.errno)
    return error.strerror or str(error)  # e.g. a failed host name lookup


class _WarningLines(logging.Handler):
    """Shows the library's warnings (a skipped batch, say) as `aiobatches: warning:` lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        _say(f"warning: {record.getMessage()}")


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


def _whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`."""

    def parse(raw: str) -> int:
        value = _count(raw)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def _count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _moment(raw: str) -> int:
    """Unix seconds from Unix seconds or an ISO date/time (UTC when no zone is given)."""
    with contextlib.suppress(ValueError):
        return int(raw)  # exact, however large
    with contextlib.suppress(ValueError):
        seconds = float(raw)
        if not math.isfinite(seconds):  # inf, nan, 1e400: no moment at all
            raise argparse.ArgumentTypeError(f"expected a finite number of seconds, got {raw!r}")
        return int(seconds)
    try:
        moment = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected an ISO date/time (2025-11-01, 2025-11-01T12:00Z) or Unix seconds,"
            f" got {raw!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


def _fields(raw: str) -> list[str]:
    fields = [field.strip() for field in raw.split(",") if field.strip()]
    unknown = [field for field in fields if field not in field_names()]
    if not fields or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown field(s) {', '.join(unknown) or '(none given)'};"
            f" choose from {', '.join(field_names())}"
        )
    return fields
