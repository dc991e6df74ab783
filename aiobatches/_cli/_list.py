"""`aiobatches list`: stream batches, filter them on this side, and write them as they come.

`Selection` decides, page by page, which batches to write and whether to stop; the
command is a loop that writes what it decides and flushes after every page.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Sequence
from typing import TextIO

from attrs import frozen

from .. import Batch, BatchStream
from .._config import MAX_PAGE_SIZE
from . import _options
from ._common import EXIT_OK, Command, Commands, on_terminal, say, writing
from ._output import Progress, Writer, make_writer
from ._source import connect

_HELP = """\
Stream batches, newest first. On a terminal they are shown as a table with
progress on stderr; piped, they are written as JSON Lines.

Filters run on this side (the API has none): --status, --created-after and
--created-before. Because the API lists newest first, --created-after stops
fetching at the first older batch: later pages can only hold older ones.
--max-items counts batches after filtering.
"""


def _add(commands: Commands) -> argparse.ArgumentParser:
    parser = _options.command(commands, "list", "stream batches, newest first", _HELP)
    _options.add_source(parser, "where to list from", "list from an embedded fake server")
    paging = parser.add_argument_group("paging")
    paging.add_argument(
        "--limit",
        type=_options.whole(1, MAX_PAGE_SIZE),
        default=MAX_PAGE_SIZE,
        help=f"page size, 1-{MAX_PAGE_SIZE} (default {MAX_PAGE_SIZE})",
    )
    paging.add_argument("--after", help="resume after this batch id")
    paging.add_argument(
        "--prefetch",
        type=_options.whole(0),
        default=1,
        help="pages fetched ahead (0: sequential; default 1)",
    )
    paging.add_argument(
        "--max-items", type=_options.whole(0), help="stop after this many batches (filtered)"
    )
    paging.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip a malformed batch with a warning instead of stopping there",
    )
    filters = parser.add_argument_group("filters (client-side)")
    filters.add_argument(
        "--status", action="append", metavar="STATUS", help="keep this status (repeatable)"
    )
    filters.add_argument(
        "--created-after",
        type=_options.moment,
        metavar="WHEN",
        help="keep batches created at or after WHEN (ISO date/time, UTC if no zone, or Unix"
        " seconds); fetching stops at the first older batch",
    )
    filters.add_argument(
        "--created-before",
        type=_options.moment,
        metavar="WHEN",
        help="keep batches created before WHEN",
    )
    _options.add_output(parser)
    return parser


@frozen
class Taken:
    """What to write of one page, and whether the listing is done after it."""

    batches: list[Batch]
    done: bool


@frozen
class Selection:
    """Which batches a listing writes: of `statuses` (all when empty), created from
    `after` and before `before`, at most `most` of them."""

    statuses: Collection[str] = frozenset()
    after: int | None = None
    before: int | None = None
    most: int | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Selection:
        return cls(
            frozenset(args.status or ()), args.created_after, args.created_before, args.max_items
        )

    @property
    def filtered(self) -> bool:
        """Whether some batches are left out, so that the stream cannot count `most`."""
        return bool(self.statuses) or self.after is not None or self.before is not None

    def take(self, page: Sequence[Batch], written: int) -> Taken:
        """The batches of `page` to write after `written` others; done once `most` are
        written or (newest first) at the first batch older than `after`, as every later
        one is."""
        kept: list[Batch] = []
        for batch in page:
            if written + len(kept) == self.most or (
                self.after is not None and batch.created_at < self.after
            ):
                return Taken(kept, done=True)
            if self._keeps(batch):
                kept.append(batch)
        return Taken(kept, done=written + len(kept) == self.most)

    def _keeps(self, batch: Batch) -> bool:
        if self.statuses and batch.status not in self.statuses:
            return False
        return self.before is None or batch.created_at < self.before


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Stream, filter and write batches; flushes after every page."""
    kind = args.format or ("table" if out.isatty() else "jsonl")
    terminal = on_terminal(err)
    progress = None if terminal is None else Progress(terminal)
    selection = Selection.of(args)
    async with connect(args, arrivals=False) as source:
        stream = source.client.list_batches(
            limit=args.limit,
            after=args.after,
            prefetch=args.prefetch,
            max_items=None if selection.filtered else args.max_items,
            on_invalid="skip" if args.skip_invalid else "raise",
        )
        try:
            async with stream:
                with writing():
                    writer = make_writer(kind, out, args.fields)
                await _write(stream, selection, writer, out, progress)
        finally:
            if progress is not None:  # however the listing ends, before any message of it
                progress.close()
            _report_skipped(stream.skipped)
    return EXIT_OK


async def _write(
    stream: BatchStream[Batch],
    selection: Selection,
    writer: Writer,
    out: TextIO,
    progress: Progress | None,
) -> None:
    """Write what `selection` takes of each page until it is done or the pages end."""
    written = 0
    async for page in stream.pages():
        taken = selection.take(page.data, written)
        with writing():
            for batch in taken.batches:
                writer.write(batch)
            out.flush()
            if progress is not None:
                progress.page(len(page.data))
        written += len(taken.batches)
        if taken.done:
            break  # leaving `async with stream` requests no page nobody needs
    with writing():
        writer.close()
        out.flush()


def _report_skipped(skipped: Sequence[object]) -> None:
    """Sum up the batches `--skip-invalid` left out; each had its own warning."""
    if skipped:
        plural = "batch" if len(skipped) == 1 else "batches"
        say(f"skipped {len(skipped)} invalid {plural} (see the warnings above)")


COMMAND = Command(_add, _run)
