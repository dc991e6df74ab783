"""`aiobatches serve`: run the fake server until interrupted, its base URL on stdout;
with `--live`, a living one whose batches move on a sped-up clock, as the demo's do."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Final, TextIO

from . import _options
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    Command,
    CommandError,
    Commands,
    on_terminal,
    reason,
    say,
    writing,
)
from ._listen import Diverted, Reports
from ._source import DEMO_SPEED, living_server
from ._view import VIEWS

if TYPE_CHECKING:
    from ..testing import FakeBatchesServer

_MAX_LATENCY_MS: Final = 3_600_000
_MAX_COUNT: Final = 100_000
"""The most batches `serve` makes up: about 250 MB of them, generated in a couple of seconds."""
_MAX_SPEED: Final = 86_400
"""The fastest clock: a day a second."""
_HELP = """\
Run FakeBatchesServer until Ctrl-C; prints its base URL on stdout: OpenAI's,
or with --provider anthropic the base URL an Anthropic client takes (the same
batches served as Message Batches; both are served either way).

With --live its batches live: they move through their statuses, their request
counts grow and new ones appear, on a clock that runs --speed times real time
from the same moment every run (as `--demo` does), so a client can list, wait
and watch against it. Without it the batches never change.
"""


def _add(commands: Commands) -> argparse.ArgumentParser:
    parser = _options.command(commands, "serve", "run the fake list-batches server", _HELP)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=_options.whole(0, _options.MAX_PORT),
        default=0,
        help="port, 0-65535 (default 0: any free)",
    )
    parser.add_argument(
        "--count",
        type=_options.whole(0, _MAX_COUNT),
        default=250,
        help=f"batches to serve, up to {_MAX_COUNT:,} (default 250; with --live, those of"
        " the last week)",
    )
    parser.add_argument(
        "--seed", type=_options.whole(), default=0, help="seed of the synthetic batches"
    )
    parser.add_argument(
        "--latency-ms",
        type=_options.whole(0, _MAX_LATENCY_MS),
        default=0,
        help="delay of each page in ms, up to an hour",
    )
    parser.add_argument(
        "--provider",
        choices=tuple(VIEWS),
        default="openai",
        help="whose base URL to print: OpenAI's (default) or Anthropic's",
    )
    parser.add_argument(
        "--api-key", help="require this key (as a Bearer token, or Anthropic's x-api-key)"
    )
    living = parser.add_argument_group("living batches")
    living.add_argument(
        "--live", action="store_true", help="let the batches move and new ones arrive"
    )
    living.add_argument(
        "--speed",
        type=_options.seconds(zero=False, high=_MAX_SPEED, what="clock seconds a second"),
        metavar="X",
        help=f"with --live, clock seconds per real second, up to {_MAX_SPEED:,}"
        f" (default {DEMO_SPEED:g}: a minute a second)",
    )
    return parser


def _check(args: argparse.Namespace) -> str | None:
    if args.speed is not None and not args.live:
        return "--speed sets the clock of --live batches: add --live"
    return None


def _server(args: argparse.Namespace) -> FakeBatchesServer:
    options = {
        "count": args.count,
        "seed": args.seed,
        "api_key": args.api_key,
        "latency": args.latency_ms / 1000,
        "host": args.host,
        "port": args.port,
    }
    if args.live:
        return living_server(speed=args.speed or DEMO_SPEED, arrivals=True, **options)
    from ..testing import FakeBatchesServer  # noqa: PLC0415 - aiohttp.web only when serving

    # It shows no requests: a log would only grow for hours.
    return FakeBatchesServer(**options, record_requests=0)


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Serve until interrupted."""
    server = _server(args)
    try:
        await server.start()
    except OSError as error:  # in use, not ours to bind, or an unknown host
        address = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
        raise CommandError(f"cannot serve on {address}: {reason(error)}", EXIT_FAILED) from None
    # Anyone may reach the server: what aiohttp logs of a malformed request is a line.
    diverted = Diverted(Reports(lambda line: say(f"warning: {line}")))
    diverted.start()
    try:
        with writing():
            out.write(f"{server.anthropic_url if args.provider == 'anthropic' else server.url}\n")
            out.flush()
        terminal = on_terminal(err)
        if terminal is not None:
            pace = f" batches living at {args.speed or DEMO_SPEED:g}x" if args.live else ""
            terminal.write(f"serving{pace}; press Ctrl-C to stop\n")
            terminal.flush()
        await asyncio.Event().wait()
    finally:
        try:
            await server.close()
        finally:
            diverted.stop()
    return EXIT_OK  # pragma: no cover - only Ctrl-C ends the wait


COMMAND = Command(_add, _run, _check)
