"""The `aiobatches` command: `list` streams batches, `serve` runs the fake server.

Exit codes: 0 ok, 1 API error, 2 usage error, 130 interrupted. Data goes to
stdout only; progress and messages go to stderr (progress only on a terminal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TextIO

from ._client import MAX_PAGE_SIZE, Client
from ._errors import AIOBatchesError, APIError
from ._models import Batch
from ._output import FORMATS, Progress, field_names, make_writer
from ._version import version

EXIT_OK, EXIT_API_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_DEMO_KEY = "sk-demo"

_LIST_HELP = """\
Stream batches, newest first. On a terminal they are shown as a table with
progress on stderr; piped, they are written as JSON Lines.

Filters run on this side (the API has none): --status, --created-after and
--created-before. Because the API lists newest first, --created-after stops
fetching at the first older batch: later pages can only hold older ones.
--max-items counts batches after filtering.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return asyncio.run(_serve(args))
        return asyncio.run(_list(args, sys.stdout, sys.stderr))
    except KeyboardInterrupt:
        return EXIT_OK if args.command == "serve" else EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except APIError as error:
        print(f"aiobatches: {_describe(error)}", file=sys.stderr)
        return EXIT_API_ERROR
    except (AIOBatchesError, ValueError) as error:
        print(f"aiobatches: {error}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiobatches", description="Stream an organization's OpenAI batch jobs."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser(
        "list",
        help="stream batches, newest first",
        description=_LIST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = listing.add_argument_group("where to list from")
    source.add_argument(
        "--demo", action="store_true", help="list from an embedded fake server (no API key needed)"
    )
    source.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL or OpenAI's)")
    source.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY); never printed")
    paging = listing.add_argument_group("paging")
    paging.add_argument(
        "--limit", type=_page_size, default=MAX_PAGE_SIZE, help="page size, 1-100 (default 100)"
    )
    paging.add_argument("--after", help="resume after this batch id")
    paging.add_argument(
        "--prefetch", type=_count, default=1, help="pages fetched ahead (0: sequential; default 1)"
    )
    paging.add_argument("--max-items", type=_count, help="stop after this many batches (filtered)")
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
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_count, default=0, help="port (default: any free one)")
    serve.add_argument("--count", type=_count, default=250, help="batches to serve (default 250)")
    serve.add_argument("--seed", type=int, default=0, help="seed of the synthetic batches")
    serve.add_argument("--latency-ms", type=_count, default=0, help="delay of each page in ms")
    serve.add_argument("--api-key", help="require this Bearer key")
    return parser


async def _list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Stream, filter and write batches; flushes after every page."""
    kind = args.format or ("table" if out.isatty() else "jsonl")
    progress = Progress(err) if err.isatty() else None
    keep = _filter(args)
    filtered = bool(args.status or args.created_after is not None or args.created_before)
    written = 0
    async with _client(args) as client:
        stream = client.list_batches(
            limit=args.limit,
            after=args.after,
            prefetch=args.prefetch,
            max_items=None if filtered else args.max_items,
        )
        writer = make_writer(kind, out, args.fields)
        async with stream:
            async for page in stream.pages():
                for batch in page.data:
                    if written == args.max_items or (
                        args.created_after is not None and batch.created_at < args.created_after
                    ):  # enough, or (newest first) every later batch is older
                        await stream.aclose()
                        break
                    if keep(batch):
                        writer.write(batch)
                        written += 1
                if written == args.max_items:  # do not ask for a page nobody needs
                    await stream.aclose()
                out.flush()
                if progress is not None:
                    progress.page(len(page.data))
        writer.close()
        out.flush()
    if progress is not None:
        progress.close()
    return EXIT_OK


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
        async with Client(api_key=args.api_key, base_url=args.base_url) as client:
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
    async with server:
        print(server.url, flush=True)
        if sys.stderr.isatty():
            print("serving; press Ctrl-C to stop", file=sys.stderr, flush=True)
        await asyncio.Event().wait()
    return EXIT_OK  # pragma: no cover - only Ctrl-C ends the wait


def _describe(error: APIError) -> str:
    """One line: what failed, status and request id when known, and where to resume."""
    parts = [f"listing batches failed: {error.message}"]
    status = getattr(error, "status_code", None)
    request_id = getattr(error, "request_id", None)
    if status is not None:
        parts.append(f"status {status}")
    if request_id:
        parts.append(f"request id {request_id}")
    parts.append(f"resume with --after {error.cursor}" if error.cursor else "nothing to resume")
    return "; ".join(parts)


def _page_size(raw: str) -> int:
    value = _count(raw)
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_PAGE_SIZE}, got {value}")
    return value


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
    try:
        return int(float(raw))
    except ValueError:
        pass
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
