"""The `aiobatches` command: `list` streams batches, `wait` waits until some finish,
`watch` follows them live, `serve` runs the fake server.

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
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO, TypeVar

from ._awaiting import BatchWatch
from ._client import Client
from ._config import MAX_PAGE_SIZE, check_batch_id
from ._errors import AIOBatchesError, APIError
from ._models import Batch
from ._output import FORMATS, Progress, WaitProgress, event_json, field_names, make_writer
from ._response import Retrieved
from ._stream import FetchedPage
from ._terminal import for_terminal
from ._version import version
from ._watchview import Board, Screen, View, follow, warnings_on

if TYPE_CHECKING:
    from .testing import FakeBatchesServer

AnyClient = TypeVar("AnyClient", bound=Client)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
EXIT_UNSUCCESSFUL, EXIT_TIMEOUT = 3, 124
_EXIT_CODES = """\
exit codes:
  0    ok
  1    API error, or a failure while running (output cannot be written, the
       port cannot be bound)
  2    usage error: a bad option or option value
  3    wait: a batch finished other than completed (failed, expired, cancelled)
  124  wait: --timeout ran out
  130  interrupted (Ctrl-C)
  143  terminated (SIGTERM, as from `timeout` or `kill`)
"""
_DEMO_KEY = "sk-demo"
_DEMO_SPEED = 60.0
"""The demo's clock runs a minute per second, so that batches move while one watches."""
_DEMO_ARRIVAL = 90.0
"""Seconds of the demo's clock between new batches (on average): one every second and a half."""
_DEMO_INTERVAL = 1.0
"""The default --interval with --demo: a poll every second."""
_INTERVAL = 15.0
"""The default --interval against a real API, as the library's."""
_MAX_PORT = 65_535
_MAX_LATENCY_MS = 3_600_000
_MAX_COUNT = 100_000
"""The most batches `serve` makes up: about 250 MB of them, generated in a couple of seconds."""
_QUOTED = 40
"""Characters of a bad option value that its usage error quotes."""

_WAIT_HELP = """\
Wait until every batch ID is finished (completed, failed, expired or
cancelled), then print them in the order given: a table on a terminal, JSON
Lines when piped. Exits 0 when all completed, 3 when any did not, 124 when
--timeout runs out, and 1 on an API error (an unknown id is one). On a
terminal, stderr shows how many have finished meanwhile.

With --demo the batches are the embedded demo server's: `aiobatches list
--demo --status in_progress` shows some of their ids. Each --demo run starts
a fresh server with the same seed, so those ids are the same every time.
"""
_WATCH_HELP = """\
Follow batches as they change. On a terminal: a table redrawn in place,
unfinished batches first with their progress, then the latest finished ones
(Ctrl-C to quit). Piped, or with --format jsonl: one JSON object per event,
{"kind": "existing"|"created"|"updated", "batch": {...}, "changes": [...],
"finished": true|false}, flushed as it happens.

Each poll lists newest first only down to the oldest batch still unfinished
at the last one, so a long history costs nothing after the first look;
--since limits that first look too.
"""
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
                return asyncio.run(_terminable(_serve(args)))
            command = {"list": _list, "wait": _wait, "watch": _watch}[args.command]
            return asyncio.run(_terminable(command(args, sys.stdout, sys.stderr)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
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
        _say(_describe(error, args.command) if isinstance(error, APIError) else str(error))
        return EXIT_FAILED


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
    _add_source(listing, "where to list from", "list from an embedded fake server")
    paging = listing.add_argument_group("paging")
    paging.add_argument(
        "--limit",
        type=_whole(1, MAX_PAGE_SIZE),
        default=MAX_PAGE_SIZE,
        help="page size, 1-100 (default 100)",
    )
    paging.add_argument("--after", help="resume after this batch id")
    paging.add_argument(
        "--prefetch",
        type=_whole(0),
        default=1,
        help="pages fetched ahead (0: sequential; default 1)",
    )
    paging.add_argument(
        "--max-items", type=_whole(0), help="stop after this many batches (filtered)"
    )
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
    _add_wait(commands)
    _add_watch(commands)
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
    serve.add_argument(
        "--count",
        type=_whole(0, _MAX_COUNT),
        default=250,
        help=f"batches to serve, up to {_MAX_COUNT:,} (default 250)",
    )
    serve.add_argument("--seed", type=_whole(), default=0, help="seed of the synthetic batches")
    serve.add_argument(
        "--latency-ms",
        type=_whole(0, _MAX_LATENCY_MS),
        default=0,
        help="delay of each page in ms, up to an hour",
    )
    serve.add_argument("--api-key", help="require this Bearer key")
    return parser


def _add_source(parser: argparse.ArgumentParser, title: str, demo: str) -> None:
    """The options that say which API to talk to, and as whom."""
    source = parser.add_argument_group(title)
    source.add_argument("--demo", action="store_true", help=f"{demo} (no API key needed)")
    source.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL or OpenAI's)")
    source.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY); never printed")
    source.add_argument(
        "--proxy",
        help="proxy URL (default: $HTTPS_PROXY or $HTTP_PROXY, minus $NO_PROXY; not for --demo)",
    )


def _add_interval(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--interval",
        type=_seconds(zero=True),
        metavar="S",
        help=f"seconds between polls (default {_INTERVAL:g}; {_DEMO_INTERVAL:g} with --demo);"
        " the server may ask for longer",
    )


def _add_wait(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    wait = commands.add_parser(
        "wait",
        help="wait until batches finish, then print them",
        description=_WAIT_HELP,
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wait.add_argument("ids", nargs="+", type=_batch_id, metavar="ID", help="a batch id")
    _add_source(wait, "where the batches are", "wait on the embedded demo server's batches")
    polling = wait.add_argument_group("polling")
    _add_interval(polling)
    polling.add_argument(
        "--timeout",
        type=_seconds(zero=False),
        metavar="S",
        help="give up after S seconds, exiting 124 (default: wait for as long as it takes)",
    )
    output = wait.add_argument_group("output")
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


def _add_watch(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    watch = commands.add_parser(
        "watch",
        help="follow batches live",
        description=_WATCH_HELP,
        epilog=_EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_source(watch, "where to watch", "watch an embedded demo server whose batches move")
    what = watch.add_argument_group("what to watch")
    what.add_argument(
        "--since",
        type=_moment,
        metavar="WHEN",
        help="first look only at batches created at or after WHEN (ISO date/time, UTC if no"
        " zone, or Unix seconds; default: every batch)",
    )
    what.add_argument(
        "--ids", nargs="+", type=_batch_id, metavar="ID", help="watch only these batches"
    )
    what.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="show only batches with this status (repeatable)",
    )
    what.add_argument(
        "--until-finished",
        action="store_true",
        help="stop once no watched batch is unfinished (after a poll)",
    )
    _add_interval(what)
    watch.add_argument_group("output").add_argument(
        "--format",
        choices=("jsonl", "table"),
        help="output format (default: table on a terminal, jsonl when piped)",
    )


async def _list(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Stream, filter and write batches; flushes after every page."""
    kind = args.format or ("table" if out.isatty() else "jsonl")
    progress = Progress(err) if err is not None and err.isatty() else None
    keep = _filter(args)
    filtered = bool(args.status or args.created_after is not None or args.created_before)
    written = 0
    async with _client(args, Client, arrivals=False) as client:
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
        finally:
            if progress is not None:  # however the listing ends, before any message of it
                progress.close()
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


async def _wait(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Wait for the batches, print them in the order given, and exit by how they ended."""
    kind = args.format or ("table" if out.isatty() else "jsonl")
    interval = _interval(args)
    progress = WaitProgress(err, len(set(args.ids))) if err is not None and err.isatty() else None
    async with _client(args, _NotingClient, arrivals=True) as client:
        client.noted = dict.fromkeys(args.ids)
        if progress is not None:
            client.on_note = lambda: progress.show(client.finished(), *client.processed())
            progress.show(0)
        try:
            batches = await client.wait_for_batches(
                args.ids, poll_interval=interval, timeout=args.timeout
            )
        except TimeoutError:
            if args.timeout is None:  # not our deadline: a bug to report, not a timeout
                raise
            raise _CommandError(_timed_out(args, client), EXIT_TIMEOUT) from None
        finally:
            if progress is not None:
                progress.close()
    with _writing():
        writer = make_writer(kind, out, args.fields)
        for batch in batches:
            writer.write(batch)
        writer.close()
        out.flush()
    unsuccessful = [batch for batch in dict.fromkeys(batches) if batch.status != "completed"]
    if unsuccessful:
        ended = ", ".join(f"{batch.id} {batch.status}" for batch in unsuccessful)
        _say(f"{len(unsuccessful)} of {len(set(args.ids))} did not complete: {ended}")
        return EXIT_UNSUCCESSFUL
    return EXIT_OK


def _timed_out(args: argparse.Namespace, client: _NotingClient) -> str:
    """What a wait that ran out of time had seen: how many finished, and what the others did."""
    waiting = [
        f"{batch_id} {'not seen yet' if batch is None else batch.status}"
        for batch_id, batch in client.noted.items()
        if batch is None or not batch.is_finished
    ]
    return (
        f"gave up after {args.timeout:g}s: {client.finished()} of {len(client.noted)} batches"
        f" finished; still waiting for {', '.join(waiting)}"
    )


class _NotingClient(Client):
    """A client that notes the latest state of the batches `wait` waits for, from every
    page and retrieval the wait makes, so that its progress costs no request of its own.

    `wait_for_batches` has no progress hook; these two methods are where every batch it
    sees passes through.
    """

    noted: dict[str, Batch | None]
    on_note: Callable[[], None] | None = None

    def finished(self) -> int:
        return sum(1 for batch in self.noted.values() if batch is not None and batch.is_finished)

    def processed(self) -> tuple[int, int]:
        """Requests processed (completed or failed) and requests in all, over the batches."""
        counts = [batch.request_counts for batch in self.noted.values() if batch is not None]
        known = [count for count in counts if count is not None]
        return sum(c.completed + c.failed for c in known), sum(c.total for c in known)

    async def _fetch_page(self, after: str | None, limit: int) -> FetchedPage:
        fetched = await super()._fetch_page(after, limit)
        self._note(fetched.parsed.batches)
        return fetched

    async def _retrieve(self, batch_id: str) -> Retrieved:
        retrieved = await super()._retrieve(batch_id)
        self._note([retrieved.batch])
        return retrieved

    def _note(self, batches: Iterable[Batch]) -> None:
        seen = [batch for batch in batches if batch.id in self.noted]
        for batch in seen:
            self.noted[batch.id] = batch
        if seen and self.on_note is not None:
            self.on_note()


async def _watch(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Follow the batches until interrupted (or, with --until-finished, until none is left)."""
    del err  # the table, like the events, goes to stdout
    kind = args.format or ("table" if out.isatty() else "jsonl")
    statuses = frozenset(args.status or ())
    interval = _interval(args)
    async with _client(args, Client, arrivals=True) as client:
        watch = client.watch_batches(
            poll_interval=interval,
            since=args.since,
            ids=args.ids,
            until_finished=args.until_finished,
        )
        async with watch:
            if kind == "table":
                await _watch_table(watch, out, statuses=statuses, interval=interval)
                return EXIT_OK
            async for event in watch:
                if statuses and event.batch.status not in statuses:
                    continue
                with _writing():
                    out.write(event_json(event) + "\n")
                    out.flush()
    return EXIT_OK


async def _watch_table(
    watch: BatchWatch, out: TextIO, *, statuses: frozenset[str], interval: float
) -> None:
    """The live table: on a terminal's alternate screen, given back however the watch ends;
    when the watch ends by itself, its last frame stays printed on the normal screen."""
    live = out.isatty() and os.environ.get("TERM") != "dumb"
    color = live and "NO_COLOR" not in os.environ
    with _writing(), Screen(out, live=live, color=color) as screen:
        view = View(screen, Board(statuses), interval=interval)
        with warnings_on(view):
            await follow(watch, view)
        if screen.live:
            screen.leave()
            screen.print(view.frame())


def _interval(args: argparse.Namespace) -> float:
    if args.interval is not None:
        return float(args.interval)
    return _DEMO_INTERVAL if args.demo else _INTERVAL


@contextlib.asynccontextmanager
async def _client(
    args: argparse.Namespace, kind: type[AnyClient], *, arrivals: bool
) -> AsyncIterator[AnyClient]:
    """A client of `kind`; with `--demo`, of an embedded demo server, where new batches
    arrive if `arrivals` (for the commands that follow batches over time)."""
    if not args.demo:
        try:
            client = kind(api_key=args.api_key, base_url=args.base_url, proxy=args.proxy)
        except (AIOBatchesError, ValueError, TypeError) as error:  # a bad key, URL or proxy
            raise _CommandError(str(error), EXIT_USAGE) from None
        async with client:
            yield client
        return
    async with (
        _demo_server(arrivals=arrivals) as server,
        kind(api_key=_DEMO_KEY, base_url=server.url) as client,
    ):
        yield client


def _demo_server(*, arrivals: bool) -> FakeBatchesServer:
    """The embedded server of `--demo`: seeded batches living on an accelerated clock
    that starts at the same moment every run, so every run has the same ids."""
    # aiohttp.web only for the demo
    from .testing import AcceleratedClock, FakeBatchesServer  # noqa: PLC0415

    return FakeBatchesServer(
        api_key=_DEMO_KEY,
        clock=AcceleratedClock(speed=_DEMO_SPEED),
        arrival_every=_DEMO_ARRIVAL if arrivals else 0.0,
        record_requests=0,  # nothing reads the demo's log, and a watch runs for hours
    )


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
        record_requests=0,  # it shows no requests: a log would only grow for hours
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


_DOING: Final = {"list": "listing", "wait": "waiting for", "watch": "watching"}


def _describe(error: APIError, command: str) -> str:
    """One line: what failed, status and request id when known, and (for `list`) where to
    resume."""
    parts = [f"{_DOING.get(command, 'listing')} batches failed: {error.message}"]
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


def _number(
    raw: str, *, low: int | None = None, high: int | None = None, unit: str = ""
) -> int | float | None:
    """The number `raw` spells, from `low` (and up to `high`) when given: an exact int when
    it is whole, else a float; None when it spells no number at all.

    Every numeric option reads its value here, so that none passes on a number that what
    takes it cannot hold: inf, nan, 1e309 or a whole number of 309 digits is a usage error
    (`unit`, say " of seconds", completes its message), whichever the option.
    """
    try:
        approximate = float(raw)  # reads digits of any length, where int() stops at 4,300
    except ValueError:
        return None
    value: int | float = approximate
    if math.isfinite(approximate):
        with contextlib.suppress(ValueError):  # 1.5, 1e3
            value = int(raw)  # exact, however large: it fits a float, so it has 309 digits at most
    if (low is not None and value < low) or (high is not None and value > high):  # nan: neither
        limits = f"{low} or more" if high is None else f"from {low} to {high}"
        raise argparse.ArgumentTypeError(f"must be {limits}, got {_quoted(raw)}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number{unit}, got {_quoted(raw)}")
    return value


def _quoted(raw: str) -> str:
    """`raw` quoted for a usage error, cut short if long: 5,000 digits are not echoed whole."""
    if len(raw) <= _QUOTED:
        return repr(raw)
    return f"{raw[:_QUOTED]!r}... ({len(raw):,} characters)"


def _whole(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number, from `low` (and up to `high`) when given."""

    def parse(raw: str) -> int:
        value = _number(raw, low=low, high=high)
        if not isinstance(value, int):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {_quoted(raw)}")
        return value

    return parse


def _moment(raw: str) -> int:
    """Unix seconds from Unix seconds (exact when whole) or an ISO date/time (UTC when no
    zone is given)."""
    seconds = _number(raw, unit=" of seconds")
    if seconds is not None:
        return int(seconds)
    try:
        moment = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected an ISO date/time (2025-11-01, 2025-11-01T12:00Z) or Unix seconds,"
            f" got {_quoted(raw)}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


def _seconds(*, zero: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds, above 0 (or from 0 when `zero`)."""

    def parse(raw: str) -> float:
        value = _number(raw, low=0 if zero else None, unit=" of seconds")
        if value is None:
            raise argparse.ArgumentTypeError(f"expected seconds, got {_quoted(raw)}")
        if value <= 0 and not zero:
            raise argparse.ArgumentTypeError(f"must be more than 0, got {_quoted(raw)}")
        return float(value)

    return parse


def _batch_id(raw: str) -> str:
    """An argparse type: something that can be a batch id (the API's, or a fake server's),
    as `retrieve_batch` checks one, and nothing a terminal would act on."""
    try:
        check_batch_id("ID", raw)
    except ValueError:
        pass
    else:
        if for_terminal(raw) == raw and raw == raw.strip():
            return raw
    raise argparse.ArgumentTypeError(
        f"expected a batch id such as batch_abc123, got {for_terminal(repr(raw))}"
    )


def _fields(raw: str) -> list[str]:
    fields = [field.strip() for field in raw.split(",") if field.strip()]
    unknown = [field for field in fields if field not in field_names()]
    if not fields or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown field(s) {', '.join(unknown) or '(none given)'};"
            f" choose from {', '.join(field_names())}"
        )
    return fields
