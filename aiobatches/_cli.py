"""The `aiobatches` command: `aiobatches list` streams batches to stdout as JSON Lines.

Exit codes: 0 ok, 1 API error, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import BinaryIO

import orjson

from ._client import MAX_PAGE_SIZE, Client
from ._converter import unstructure_batch
from ._errors import AIOBatchesError, APIError
from ._version import version

EXIT_OK, EXIT_API_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_DEMO_KEY = "sk-demo"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_list(args, sys.stdout.buffer))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except APIError as error:
        print(f"aiobatches: {_describe(error)}", file=sys.stderr)
        return EXIT_API_ERROR
    except AIOBatchesError as error:
        print(f"aiobatches: {error}", file=sys.stderr)
        return EXIT_USAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiobatches", description="Stream an organization's OpenAI batch jobs."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    listing = commands.add_parser(
        "list", help="stream batches, newest first, as JSON Lines", description=_LIST_HELP
    )
    listing.add_argument(
        "--demo", action="store_true", help="list from an embedded fake server (no API key needed)"
    )
    listing.add_argument("--limit", type=_page_size, default=MAX_PAGE_SIZE, help="page size, 1-100")
    listing.add_argument("--after", help="resume after this batch id")
    listing.add_argument(
        "--prefetch", type=_non_negative, default=1, help="pages fetched ahead (0: sequential)"
    )
    listing.add_argument("--max-items", type=_non_negative, help="stop after this many batches")
    listing.add_argument("--base-url", help="API base URL (default: $OPENAI_BASE_URL or OpenAI)")
    listing.add_argument("--api-key", help="API key (default: $OPENAI_API_KEY)")
    return parser


_LIST_HELP = "Stream batches to stdout as JSON Lines, one batch per line, newest first."


async def _list(args: argparse.Namespace, out: BinaryIO) -> int:
    async with _client(args) as client:
        stream = client.list_batches(
            limit=args.limit, after=args.after, prefetch=args.prefetch, max_items=args.max_items
        )
        async with stream:
            async for page in stream.pages():
                out.write(b"".join(orjson.dumps(unstructure_batch(b)) + b"\n" for b in page.data))
                out.flush()
    return EXIT_OK


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


def _describe(error: APIError) -> str:
    """One line: what failed, status and request id when known, and where to resume."""
    parts = [error.message]
    status = getattr(error, "status_code", None)
    request_id = getattr(error, "request_id", None)
    if status is not None:
        parts.append(f"status {status}")
    if request_id:
        parts.append(f"request id {request_id}")
    resume = f"--after {error.cursor}" if error.cursor else "from the start (no --after)"
    parts.append(f"resume with {resume}")
    return "; ".join(parts)


def _page_size(raw: str) -> int:
    value = _non_negative(raw)
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_PAGE_SIZE}, got {value}")
    return value


def _non_negative(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value
