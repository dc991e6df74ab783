"""`aiobatches watch`: follow batches live, as a table redrawn in place on a terminal or
as one JSON line per event."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from .. import BatchWatch
from . import _options
from ._board import Board
from ._common import EXIT_OK, Command, Commands, writing
from ._output import event_json
from ._screen import Screen, View, follow, warnings_on
from ._source import connect

_HELP = """\
Follow batches as they change. On a terminal: a table redrawn in place,
unfinished batches first with their progress, then the latest finished ones,
most recently finished first (Ctrl-C to quit). Piped, or with --format jsonl:
one JSON object per event, {"kind": "existing"|"created"|"updated", "batch":
{...}, "changes": [...], "finished": true|false}, flushed as it happens.

Each poll lists newest first only down to the oldest batch still unfinished
at the last one, so a long history costs nothing after the first look;
--since limits that first look too.
"""


def _add(commands: Commands) -> argparse.ArgumentParser:
    parser = _options.command(commands, "watch", "follow batches live", _HELP)
    _options.add_source(
        parser, "where to watch", "watch an embedded demo server whose batches move"
    )
    what = parser.add_argument_group("what to watch")
    what.add_argument(
        "--since",
        type=_options.moment,
        metavar="WHEN",
        help="first look only at batches created at or after WHEN (ISO date/time, UTC if no"
        " zone, or Unix seconds; default: every batch)",
    )
    what.add_argument(
        "--ids", nargs="+", type=_options.batch_id, metavar="ID", help="watch only these batches"
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
    _options.add_interval(what)
    _options.add_output(parser, ("jsonl", "table"))
    return parser


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Follow the batches until interrupted (or, with --until-finished, until none is left)."""
    del err  # the table, like the events, goes to stdout
    kind = args.format or ("table" if out.isatty() else "jsonl")
    statuses = frozenset(args.status or ())
    interval = _options.interval(args)
    async with connect(args, arrivals=True) as source:
        watch = source.client.watch_batches(
            poll_interval=interval,
            since=args.since,
            ids=args.ids,
            until_finished=args.until_finished,
        )
        async with watch:
            if kind == "table":
                await _table(watch, out, statuses=statuses, interval=interval)
                return EXIT_OK
            async for event in watch:
                if statuses and event.batch.status not in statuses:
                    continue
                with writing():
                    out.write(event_json(event) + "\n")
                    out.flush()
    return EXIT_OK


async def _table(
    watch: BatchWatch, out: TextIO, *, statuses: frozenset[str], interval: float
) -> None:
    """The live table: on a terminal's alternate screen, given back however the watch ends;
    when the watch ends by itself, its last frame stays printed on the normal screen."""
    live = out.isatty() and os.environ.get("TERM") != "dumb"
    color = live and "NO_COLOR" not in os.environ
    with writing(), Screen(out, live=live, color=color) as screen:
        view = View(screen, Board(statuses), interval=interval)
        with warnings_on(view):
            await follow(watch, view)
        if screen.live:
            screen.leave()
            screen.print(view.frame(legend=False))


COMMAND = Command(_add, _run)
