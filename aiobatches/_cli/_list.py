"""`aiobatches list`: stream batches, filter them on this side, and write them as they come.

`Selection` decides, page by page, which batches to write and whether to stop; the
command is a loop that writes what it decides and flushes after every page.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Collection, Sequence
from typing import TextIO

from attrs import frozen

from .. import APIError, BatchStream, merge
from .._config import DEFAULT_PAGE_SIZE
from .._dialect import ANTHROPIC as ANTHROPIC_API
from .._dialect import OPENAI as OPENAI_API
from .._models import AnyBatch, created_moment
from . import _options
from ._common import EXIT_OK, Command, Commands, MergeError, on_terminal, say, writing
from ._output import Progress, Writer, make_writer
from ._source import AnyClient, connect
from ._view import ANTHROPIC, OPENAI, VIEWS, view_of

_HELP = """\
Stream batches, newest first. On a terminal they are shown as a table with
progress on stderr; piped, they are written as JSON Lines.

Filters run on this side (the API has none): --status, --created-after and
--created-before. Because the API lists newest first, --created-after stops
fetching at the first older batch: later pages can only hold older ones.
--max-items counts batches after filtering.
{statuses}

Repeating --project merges those projects' listings into one, newest first
(ties in the order the projects are given), saying where each batch came
from: a `source` column first in table and csv (`source` in --fields too), and
a "source" key first in each JSON object, beside the batch's own fields. Each
project's key is --api-key if given, else $OPENAI_API_KEY_<PROJECT> if set
(the id upper-cased, each character other than a letter or digit as _:
OPENAI_API_KEY_PROJ_ABC123 for proj_abc123), else $OPENAI_API_KEY. --after
names one project's batch, so it takes a single --project.
""".format(
    statuses=textwrap.fill(
        f"--status takes the provider's statuses: OpenAI's {', '.join(OPENAI.statuses)};"
        f" Anthropic's {', '.join(ANTHROPIC.statuses)}. The other provider's is a usage"
        " error; another lower-case name is kept, for a status the API may add later."
        " --fields takes the provider's fields (source only with several --project).",
        width=76,
    )
)


def _add(commands: Commands) -> argparse.ArgumentParser:
    parser = _options.command(commands, "list", "stream batches, newest first", _HELP)
    _options.add_source(
        parser,
        "where to list from",
        "list from an embedded fake server",
        projects="merge several projects' listings into one",
    )
    paging = parser.add_argument_group("paging")
    paging.add_argument(
        "--limit",
        type=_options.whole(1, ANTHROPIC_API.max_limit),
        default=DEFAULT_PAGE_SIZE,
        help=f"page size, 1-{OPENAI_API.max_limit} (1-{ANTHROPIC_API.max_limit} with --provider"
        f" anthropic; default {DEFAULT_PAGE_SIZE})",
    )
    paging.add_argument("--after", help="resume after this batch id (one project only)")
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
        "--status",
        action="append",
        metavar="STATUS",
        help="keep this status (repeatable); with --provider anthropic, a processing_status",
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

    batches: Sequence[AnyBatch]
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

    def take(self, page: Sequence[AnyBatch], written: int) -> Taken:
        """The batches of `page` to write after `written` others; done once `most` are
        written or (newest first) at the first batch older than `after`, as every later
        one is."""
        kept: list[AnyBatch] = []
        for batch in page:
            if written + len(kept) == self.most or (
                self.after is not None and created_moment(batch) < self.after
            ):
                return Taken(kept, done=True)
            if self._keeps(batch):
                kept.append(batch)
        return Taken(kept, done=written + len(kept) == self.most)

    def _keeps(self, batch: AnyBatch) -> bool:
        if self.statuses and view_of(batch).status(batch) not in self.statuses:
            return False
        return self.before is None or created_moment(batch) < self.before


def _check(args: argparse.Namespace) -> str | None:
    """Several projects merge; a cursor is one project's."""
    problem = _options.check_source(args, projects=True)
    most = (ANTHROPIC_API if args.provider == "anthropic" else OPENAI_API).max_limit
    if problem is None and args.limit > most:
        return f"--limit: {args.provider}'s pages hold 1 to {most:,} batches, got {args.limit:,}"
    if problem is None and args.after is not None and len(args.project or ()) > 1:
        return (
            "--after names one project's batch, and each project needs its own cursor:"
            " give it with a single --project"
        )
    return problem


async def _run(args: argparse.Namespace, out: TextIO, err: TextIO | None) -> int:
    """Stream, filter and write batches; flushes after every page (every batch of a merge)."""
    kind = args.format or ("table" if out.isatty() else "jsonl")
    terminal = on_terminal(err)
    progress = None if terminal is None else Progress(terminal)
    selection = Selection.of(args)
    async with connect(args, arrivals=False) as source:
        streams = {
            project: _stream(client, args, selection) for project, client in source.clients.items()
        }
        try:
            with writing():
                writer = make_writer(
                    kind,
                    out,
                    args.fields,
                    view=VIEWS[args.provider],
                    sources=[str(project) for project in streams] if len(streams) > 1 else (),
                )
            if len(streams) == 1:
                async with next(iter(streams.values())) as stream:
                    await _write(stream, selection, writer, out, progress)
            else:
                await _write_merged(streams, selection, writer, out, progress)
        finally:
            if progress is not None:  # however the listing ends, before any message of it
                progress.close()
            _report_skipped([batch for stream in streams.values() for batch in stream.skipped])
    return EXIT_OK


def _stream(
    client: AnyClient, args: argparse.Namespace, selection: Selection
) -> BatchStream[AnyBatch]:
    stream: BatchStream[AnyBatch] = client.list_batches(  # type: ignore[assignment]
        limit=args.limit,
        after=args.after,
        prefetch=args.prefetch,
        # No project's stream needs more than the merged listing keeps.
        max_items=None if selection.filtered else args.max_items,
        on_invalid="skip" if args.skip_invalid else "raise",
    )
    return stream


async def _write(
    stream: BatchStream[AnyBatch],
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
            if progress is not None and taken.batches:
                progress.hide()  # stdout may be the same terminal: no row after the tally
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


async def _write_merged(
    streams: dict[str | None, BatchStream[AnyBatch]],
    selection: Selection,
    writer: Writer,
    out: TextIO,
    progress: Progress | None,
) -> None:
    """Write what `selection` takes of the projects' listings merged newest first, each
    batch with its project, until it is done or every listing ends."""
    written = 0
    named = {str(project): stream for project, stream in streams.items()}
    async with merge(named) as merged:
        try:
            async for project, batch in merged:
                taken = selection.take([batch], written)
                with writing():
                    if progress is not None and taken.batches:
                        progress.hide()  # stdout may be the same terminal: no row after it
                    for kept in taken.batches:
                        writer.write(kept, project)
                    out.flush()
                    if progress is not None:
                        progress.count(1)
                written += len(taken.batches)
                if taken.done:
                    break  # leaving `async with merged` closes every project's stream
        except APIError as error:  # the hint must resume every project, not the failed one
            raise MergeError(error, merged.cursors) from error
    with writing():
        writer.close()
        out.flush()


def _report_skipped(skipped: Sequence[object]) -> None:
    """Sum up the batches `--skip-invalid` left out; each had its own warning."""
    if skipped:
        plural = "batch" if len(skipped) == 1 else "batches"
        say(f"skipped {len(skipped)} invalid {plural} (see the warnings above)")


COMMAND = Command(_add, _run, _check)
