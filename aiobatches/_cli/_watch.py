"""`aiobatches watch`: follow batches live, as a table redrawn in place on a terminal or
as one JSON line per event."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TextIO

from .. import BatchEvent, BatchWatch, WebhookEvent
from .._models import AnyBatch
from . import _options, _statefile
from ._board import Board
from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    Command,
    CommandError,
    Commands,
    on_terminal,
    say,
    writing,
)
from ._listen import Listener, secret_from_environment
from ._output import event_json
from ._screen import Screen, View, follow, warnings_on
from ._source import DEMO_WEBHOOK_SECRET, connect
from ._view import VIEWS, view_of

_HELP = """\
Follow batches as they change. On a terminal: a table redrawn in place,
unfinished batches first with their progress, then the latest finished ones,
most recently finished first (Ctrl-C to quit). Piped, or with --format jsonl:
one JSON object per event, {"kind": "existing"|"created"|"updated", "batch":
{...}, "changes": [...], "finished": true|false}, flushed as it happens.

Each poll lists newest first only down to the oldest batch still unfinished
at the last one, so a long history costs nothing after the first look;
--since limits that first look too.

With --listen HOST:PORT it also receives OpenAI's webhooks there (any path;
register that URL, or your proxy's, with OpenAI): each verified one has the
batch retrieved at once, and the polls, every 600 s by default then, only
catch what a lost webhook missed. The secret comes from OPENAI_WEBHOOK_SECRET.
With --demo, the demo server pushes webhooks to the listener itself.

With --provider anthropic it watches Message Batches (--status takes
in_progress, canceling or ended). Their request counts change only when a
batch ends, so the table shows how many requests are processing until then,
and SINCE is its creation, the moment its cancellation was asked for, or its
end. Webhooks (--listen) are OpenAI's only.
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
        help="show only batches with this status (repeatable): one of "
        + "; ".join(f"{name}: {', '.join(view.statuses)}" for name, view in VIEWS.items()),
    )
    what.add_argument(
        "--until-finished",
        action="store_true",
        help="stop once no watched batch is unfinished (after a poll)",
    )
    _options.add_interval(what)
    what.add_argument(
        "--state",
        type=Path,
        metavar="FILE",
        help="resume from the watch state saved in FILE, if it exists (no flood of"
        " existing batches; what changed meanwhile is reported), and save it there as"
        " events are handled; --since and --ids are kept in it",
    )
    what.add_argument(
        "--listen",
        type=_options.address,
        metavar="HOST:PORT",
        help="also receive OpenAI's webhooks on HOST:PORT (any path; port 0: any free),"
        " verified with the secret in $OPENAI_WEBHOOK_SECRET, and poll only to reconcile",
    )
    _options.add_output(parser, ("jsonl", "table"))
    return parser


def _check(args: argparse.Namespace) -> str | None:
    """A project is OpenAI's, and so are the webhooks --listen receives."""
    if args.listen is not None and args.provider != "openai":
        return "--listen receives OpenAI's webhooks: it takes --provider openai"
    return _options.check_source(args)


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Follow the batches until interrupted (or, with --until-finished, until none is left)."""
    kind = args.format or ("table" if out.isatty() else "jsonl")
    statuses = frozenset(args.status or ())
    interval = _options.interval(args)
    resume = None if args.state is None else _statefile.load(args.state)
    if resume is not None and (args.since is not None or args.ids is not None):
        raise CommandError(
            f"--since and --ids are kept in the state file {args.state}; give neither"
            " when resuming from it",
            EXIT_USAGE,
        )
    async with (
        _listening(args, err) as listener,
        connect(
            args, arrivals=True, webhook_url=None if listener is None else listener.push_url
        ) as source,
    ):
        try:
            watch = source.client.watch_batches(
                poll_interval=interval,
                since=args.since,
                ids=args.ids,
                until_finished=args.until_finished,
                resume=resume,
            )
        except ValueError as error:  # a checkpoint of another version, or damaged
            raise CommandError(
                f"the state file {args.state} cannot be resumed from: {error}", EXIT_USAGE
            ) from None
        if listener is not None:
            listener.wake(watch.notify)
        async with watch, _saving(watch, args.state) as events:
            if kind == "table":
                await _table(events, out, statuses=statuses, interval=interval, listener=listener)
                return EXIT_OK
            async for event in events:
                if statuses and view_of(event.batch).status(event.batch) not in statuses:
                    continue
                with writing():
                    out.write(event_json(event) + "\n")
                    out.flush()
    return EXIT_OK


@contextlib.asynccontextmanager
async def _saving(
    watch: BatchWatch[Any], path: Path | None
) -> AsyncIterator[AsyncIterator[BatchEvent[AnyBatch]]]:
    """The watch's events; with --state, its checkpoint saved as they are handled."""
    if path is None:
        yield watch
        return
    async with _statefile.Saved(watch, path) as saved:
        yield saved


@contextlib.asynccontextmanager
async def _listening(
    args: argparse.Namespace, err: TextIO | None
) -> AsyncIterator[Listener | None]:
    """With --listen, the webhook receiver, bound and serving (None without): what it
    hears goes to stderr on a terminal, what it refuses to stderr always."""
    if args.listen is None:
        yield None
        return
    secret = DEMO_WEBHOOK_SECRET if args.demo else secret_from_environment()
    terminal = on_terminal(err)

    def heard(event: WebhookEvent) -> None:
        if terminal is not None:
            say(f"webhook {event.type} for {event.batch_id or 'no batch'}")

    def refused(line: str) -> None:
        say(f"warning: {line}")

    host, port = args.listen
    async with Listener(host, port, secret, heard=heard, refused=refused) as listener:
        if terminal is not None:
            say(f"listening for webhooks on {listener.tally.url} (any path)")
        yield listener


async def _table(
    watch: AsyncIterator[BatchEvent[AnyBatch]],
    out: TextIO,
    *,
    statuses: frozenset[str],
    interval: float,
    listener: Listener | None,
) -> None:
    """The live table: on a terminal's alternate screen, given back however the watch ends;
    when the watch ends by itself, its last frame stays printed on the normal screen."""
    live = out.isatty() and os.environ.get("TERM") != "dumb"
    color = live and "NO_COLOR" not in os.environ
    with writing(), Screen(out, live=live, color=color) as screen:
        board = Board(statuses)
        view = View(screen, board, interval=interval)
        if listener is not None:
            board.webhooks = listener.tally
        with warnings_on(view), _shown(listener, view):
            await follow(watch, view)
        if screen.live:
            screen.leave()
            screen.print(view.frame(legend=False))


@contextlib.contextmanager
def _shown(listener: Listener | None, view: View) -> Iterator[None]:
    """Within the block what the listener hears and refuses shows on the view (its count in
    the header, a refusal as its warning line), not on stderr under the table."""
    if listener is None:
        yield
        return
    with listener.telling(heard=lambda _: view.touch(), refused=view.warn):
        yield


COMMAND = Command(_add, _run, _check)
