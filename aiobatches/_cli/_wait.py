"""`aiobatches wait`: wait until batches finish, then print them and exit by how they ended.

`Tally` keeps the latest state of each batch the wait learns (through the library's
`observing` seam, at no request of its own), for the progress line and the message
of a wait that runs out of time. With `--demo` and no ids, `soonest` picks the demo's
batches closest to finishing.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections.abc import Iterable, Sequence
from typing import Final, TextIO

from .. import Batch, Client
from .._models import AnyBatch
from .._wait import observing
from . import _options
from ._common import (
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNSUCCESSFUL,
    EXIT_USAGE,
    Command,
    CommandError,
    Commands,
    on_terminal,
    say,
    writing,
)
from ._output import WaitProgress, make_writer
from ._source import DEMO_KEY, WAIT_DEMO_SPEED, AnyClient, anthropic_id, connect
from ._view import VIEWS, view_of

DEMO_PICKS: Final = 3
"""How many of the demo's batches `wait --demo` waits for when given no ids (fewer when
fewer can still complete)."""

_NONE_TO_PICK: Final = (
    "the demo has no unfinished batch that can complete: give ids"
    " (`aiobatches list --demo` shows them)"
)

_HELP = f"""\
Wait until every batch ID is finished (completed, failed, expired or
cancelled), then print them in the order given: a table on a terminal, JSON
Lines when piped. Exits 0 when all completed, 3 when any did not, 124 when
--timeout runs out, and 1 on an API error (an unknown id is one). On a
terminal, stderr shows how many have finished meanwhile.

With --demo the batches are the embedded demo server's, whose clock runs ten
minutes a second; with no ID it waits for the {DEMO_PICKS} closest to finishing
(on a terminal, stderr says which), never one being cancelled, which cannot
complete. `aiobatches list --demo --status in_progress` shows the ids of others.
Each --demo run starts a fresh server with the same seed, so those ids are the
same every time.

With --provider anthropic it waits for Message Batches until each has ended.
One ended other than completed (exit 3) when its cancellation was asked for
(cancel_initiated_at is set) or any of its requests expired; errored requests
in an ended batch are like failed requests in a completed OpenAI batch: exit 0.
"""


def _add(commands: Commands) -> argparse.ArgumentParser:
    parser = _options.command(commands, "wait", "wait until batches finish, then print them", _HELP)
    parser.add_argument(
        "ids",
        nargs="*",
        type=_options.batch_id,
        metavar="ID",
        help="a batch id (none with --demo: a few that finish soon)",
    )
    _options.add_source(
        parser, "where the batches are", "wait on the embedded demo server's batches"
    )
    polling = parser.add_argument_group("polling")
    _options.add_interval(polling)
    polling.add_argument(
        "--timeout",
        type=_options.seconds(zero=False),
        metavar="S",
        help="give up after S seconds, exiting 124 (default: wait for as long as it takes)",
    )
    _options.add_output(parser)
    return parser


def _check(args: argparse.Namespace) -> str | None:
    """Ids are needed, but for the demo, which picks its own."""
    if not args.ids and not args.demo:
        return "the following arguments are required: ID (or --demo)"
    return _options.check_source(args)


class Tally:
    """The latest state of each batch waited for, as the wait learns them."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.latest: dict[str, AnyBatch | None] = dict.fromkeys(ids)

    def note(self, batch: AnyBatch) -> None:
        if batch.id in self.latest:
            self.latest[batch.id] = batch

    def finished(self) -> int:
        return sum(1 for batch in self.latest.values() if batch is not None and batch.is_finished)

    def processed(self) -> tuple[int, int]:
        """Requests processed (completed or failed) and requests in all, over the batches."""
        tallies = [view_of(b).tally(b) for b in self.latest.values() if b is not None]
        known = [tally for tally in tallies if tally is not None]
        return sum(t.done + t.failed for t in known), sum(t.total for t in known)

    def timed_out(self, timeout: float) -> str:
        """What a wait that ran out of time had seen: how many finished, and what the others did."""
        waiting = [
            f"{batch_id} {'not seen yet' if batch is None else view_of(batch).status(batch)}"
            for batch_id, batch in self.latest.items()
            if batch is None or not batch.is_finished
        ]
        return (
            f"gave up after {timeout:g}s: {self.finished()} of {len(self.latest)} batches"
            f" finished; still waiting for {', '.join(waiting)}"
        )


def soonest(batches: Iterable[Batch], now: float, count: int) -> list[Batch]:
    """The `count` (or fewer) unfinished batches likely to complete first at time `now`,
    soonest first.

    A batch finalizing is a step from completing; one in progress will take, at the pace
    it has kept, as long again for each share of its requests still to do; one validating,
    or with nothing done yet, comes last. One cancelling is never picked: it can only end
    cancelled.
    """

    def left(batch: Batch) -> float:
        if batch.status == "finalizing":
            return 0.0
        counts = batch.request_counts
        started = batch.in_progress_at
        if batch.status != "in_progress" or counts is None or started is None or counts.total <= 0:
            return math.inf
        done = (counts.completed + counts.failed) / counts.total
        return max(now - started, 0.0) * (1 - done) / done if done > 0 else math.inf

    candidates = [
        batch for batch in batches if not batch.is_finished and batch.status != "cancelling"
    ]
    return sorted(candidates, key=lambda batch: (left(batch), batch.id))[:count]


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Wait for the batches, print them in the order given, and exit by how they ended."""
    kind = args.format or ("table" if out.isatty() else "jsonl")
    terminal = on_terminal(err)
    async with connect(args, arrivals=True, speed=WAIT_DEMO_SPEED) as source:
        ids, demo = args.ids, source.demo
        if not ids and demo is not None and demo.clock is not None:
            async with Client(api_key=DEMO_KEY, base_url=demo.url) as openai:
                ids = await _pick(openai, demo.clock.now())
            if args.provider == "anthropic":  # the same batches, as Message Batches
                ids = [anthropic_id(batch_id) for batch_id in ids]
            if not ids:
                raise CommandError(_NONE_TO_PICK, EXIT_USAGE)
            if terminal is not None:
                which = "demo batch" if len(ids) == 1 else f"{len(ids)} demo batches"
                say(f"waiting for the {which} closest to finishing: {' '.join(ids)}")
        batches = await _wait(source.client, ids, args, terminal)
    with writing():
        writer = make_writer(kind, out, args.fields, view=VIEWS[args.provider])
        for batch in batches:
            writer.write(batch)
        writer.close()
        out.flush()
    shortfalls = {batch.id: view_of(batch).shortfall(batch) for batch in batches}
    unsuccessful = {batch_id: why for batch_id, why in shortfalls.items() if why is not None}
    if unsuccessful:
        ended = ", ".join(f"{batch_id} {why}" for batch_id, why in unsuccessful.items())
        say(f"{len(unsuccessful)} of {len(set(ids))} did not complete: {ended}")
        return EXIT_UNSUCCESSFUL
    return EXIT_OK


async def _pick(client: Client, now: float) -> list[str]:
    """The ids of the demo's batches closest to finishing at `now`, from a listing of all
    (OpenAI's: only its counts and times tell how far a batch is)."""
    picked = soonest([batch async for batch in client.list_batches()], now, DEMO_PICKS)
    return [batch.id for batch in picked]


async def _wait(
    client: AnyClient, ids: Sequence[str], args: argparse.Namespace, terminal: TextIO | None
) -> Sequence[AnyBatch]:
    """The batches once all are finished, with a tally of them shown on `terminal`."""
    tally = Tally(ids)
    shown = None if terminal is None else _Shown(tally, WaitProgress(terminal, len(tally.latest)))
    try:
        with observing(tally.note if shown is None else shown.note):
            return await client.wait_for_batches(
                ids, poll_interval=_options.interval(args), timeout=args.timeout
            )
    except TimeoutError:
        if args.timeout is None:  # not our deadline: a bug to report, not a timeout
            raise
        raise CommandError(tally.timed_out(args.timeout), EXIT_TIMEOUT) from None
    finally:
        if shown is not None:
            shown.close()


class _Shown:
    """A tally shown on a terminal once for each burst of states the wait learns: a page's,
    or a round of retrievals', shown together when the wait next awaits."""

    def __init__(self, tally: Tally, progress: WaitProgress) -> None:
        self._tally = tally
        self._progress = progress
        self._pending: asyncio.Handle | None = None
        progress.show(0)

    def note(self, batch: AnyBatch) -> None:
        self._tally.note(batch)
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_soon(self._show)

    def _show(self) -> None:
        self._pending = None
        self._progress.show(self._tally.finished(), *self._tally.processed())

    def close(self) -> None:
        """Show what is still to show (the last states may come just before the end), then
        clear the line."""
        if self._pending is not None:
            self._pending.cancel()
            self._show()
        self._progress.close()


COMMAND = Command(_add, _run, _check)
