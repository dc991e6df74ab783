"""What the command line shows of each kind of batch: OpenAI's (and Azure's) `Batch`, or
Anthropic's `MessageBatch`.

Every per-kind decision is here, once: a batch's status, when it reached it, its progress,
its columns and whether it ended other than completed. The table, csv, the wait and the
watch's board and layout ask `view_of(batch)` (or, before any batch, `VIEWS[provider]`),
never the batch's type.
"""

from __future__ import annotations

import abc
import datetime
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar

import attrs
from attrs import frozen

from .. import Batch, MessageBatch, MessageBatchRequestCounts
from .._converter import unstructure_batch
from .._models import AnyBatch, created_moment

_B = TypeVar("_B", Batch, MessageBatch)


@frozen
class Tally:
    """A batch's requests for a progress bar: `done` and `failed` of `total`."""

    done: int
    failed: int
    total: int


def human_time(stamp: int | None, layout: str = "%Y-%m-%d %H:%MZ") -> str:
    """The time in UTC (as `layout` spells it), or the number itself when no calendar date
    has it."""
    if stamp is None:
        return ""
    try:
        moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    except (OverflowError, OSError, ValueError):  # beyond year 9999 or the platform's time_t
        return str(stamp)
    return moment.strftime(layout)


def unix(moment: datetime.datetime | None) -> int | None:
    """An aware time as whole Unix seconds (rounded down), the form OpenAI's times have."""
    return None if moment is None else math.floor(moment.timestamp())


class BatchView(abc.ABC, Generic[_B]):
    """What is shown of one kind of batch; a subclass per kind."""

    provider: str
    statuses: tuple[str, ...]
    """The statuses `--status` filters on."""
    table_fields: tuple[str, ...]
    csv_fields: tuple[str, ...]
    widths: Mapping[str, int] = MappingProxyType({})
    """Table columns that want another width than every kind's."""
    before_times: frozenset[str] = frozenset()
    """Table columns kept at their full width while a time column can be dropped instead."""
    example: _B

    @abc.abstractmethod
    def status(self, batch: _B) -> str:
        """What `--status` and the STATUS column go by."""

    @abc.abstractmethod
    def created(self, batch: _B) -> int:
        """When `batch` was created, in whole Unix seconds (the server's clock)."""

    @abc.abstractmethod
    def reached(self, batch: _B) -> int:
        """When (Unix seconds, the server's clock) `batch` reached its status."""

    @abc.abstractmethod
    def tally(self, batch: _B) -> Tally | None:
        """Its requests for a progress bar; None when unknown."""

    @abc.abstractmethod
    def done(self, batch: _B) -> str:
        """The watch's DONE/TOTAL cell."""

    @abc.abstractmethod
    def failed(self, batch: _B) -> str:
        """The watch's FAILED cell: blank when none did."""

    def model(self, batch: _B) -> str:
        """The watch's MODEL cell: blank for a kind that has none."""
        return ""

    @abc.abstractmethod
    def shortfall(self, batch: _B) -> str | None:
        """How a finished `batch` ended other than completed (for `wait`'s exit 3);
        None when it completed."""

    @abc.abstractmethod
    def derived(self) -> Mapping[str, Callable[[_B], object]]:
        """Columns computed for people, beside the batch's own (dotted) fields."""

    def value(self, batch: _B, row: Mapping[str, Any], field: str) -> object:
        """The cell of `field`: a derived column, or the (dotted) field of the JSON `row`."""
        compute = self.derived().get(field)
        if compute is not None:
            return compute(batch)
        value: Any = row
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def names(self) -> set[str]:
        """Every field name of this kind `--fields` takes."""
        return {*self.csv_fields, *self.derived(), *unstructure_batch(self.example)}


class _OpenAI(BatchView[Batch]):
    provider = "openai"
    statuses = (
        "validating", "in_progress", "finalizing", "completed",
        "failed", "expired", "cancelling", "cancelled",
    )  # fmt: skip
    table_fields = ("id", "status", "created", "counts", "endpoint", "model")
    csv_fields = (
        "id", "status", "created_at", "endpoint", "model", "completion_window",
        "input_file_id", "output_file_id", "error_file_id", "in_progress_at", "expires_at",
        "finalizing_at", "completed_at", "failed_at", "expired_at", "cancelling_at",
        "cancelled_at", "request_counts.total", "request_counts.completed",
        "request_counts.failed", "usage.input_tokens", "usage.output_tokens",
        "usage.total_tokens", "metadata", "errors",
    )  # fmt: skip
    example = Batch("batch_x", "batch", "/v1/responses", "file-x", "24h", "completed", 0)

    def status(self, batch: Batch) -> str:
        return str(batch.status)

    def created(self, batch: Batch) -> int:
        return batch.created_at

    def reached(self, batch: Batch) -> int:
        """The stamp its status sets (`completed_at`, say; a validating batch's is its
        creation), else (a server that left it out, a status unknown to us) its latest."""
        status = str(batch.status)
        own = getattr(batch, "created_at" if status == "validating" else f"{status}_at", None)
        if isinstance(own, int) and not isinstance(own, bool):
            return own
        stamps = (getattr(batch, name) for name in _OPENAI_STAMPS)
        return max((stamp for stamp in stamps if isinstance(stamp, int)), default=batch.created_at)

    def tally(self, batch: Batch) -> Tally | None:
        counts = batch.request_counts
        return None if counts is None else Tally(counts.completed, counts.failed, counts.total)

    def done(self, batch: Batch) -> str:
        counts = batch.request_counts
        return "" if counts is None else f"{counts.completed:,}/{counts.total:,}"

    def failed(self, batch: Batch) -> str:
        counts = batch.request_counts
        return "" if counts is None or not counts.failed else f"{counts.failed:,}"

    def model(self, batch: Batch) -> str:
        return batch.model or ""

    def shortfall(self, batch: Batch) -> str | None:
        return None if batch.status == "completed" else str(batch.status)

    def derived(self) -> Mapping[str, Callable[[Batch], object]]:
        return _OPENAI_DERIVED


def _openai_counts(batch: Batch) -> str:
    counts = batch.request_counts
    if counts is None:
        return ""
    text = f"{counts.completed:,}/{counts.total:,}"
    return f"{text} ({counts.failed:,} failed)" if counts.failed else text


_OPENAI_STAMPS: Final = tuple(
    field.name
    for field in attrs.fields(Batch)
    if field.name.endswith("_at") and field.name != "expires_at"  # a deadline, not an event
)
"""The batch's time stamps of what happened to it: its creation, and each status reached."""
_OPENAI_DERIVED: Final[dict[str, Callable[[Batch], object]]] = {
    "created": lambda batch: human_time(batch.created_at),
    "counts": _openai_counts,
}
"""`created` in UTC, `counts` as completed/total and failed."""


class _Anthropic(BatchView[MessageBatch]):
    """A Message Batch's counts stay `processing` until the whole batch ends, so its
    progress is 0% until then and its DONE cell says how many are processing."""

    provider = "anthropic"
    statuses = ("in_progress", "canceling", "ended")
    table_fields = ("id", "status", "created", "ended", "counts")
    widths: Mapping[str, int] = MappingProxyType({"id": 33})  # msgbatch_ and 24 characters
    # Its two times say less than its counts, which are all it tells of progress.
    before_times = frozenset({"counts"})
    csv_fields = (
        "id", "type", "processing_status", "created_at", "expires_at", "ended_at",
        "cancel_initiated_at", "archived_at", "results_url", "request_counts.processing",
        "request_counts.succeeded", "request_counts.errored", "request_counts.canceled",
        "request_counts.expired",
    )  # fmt: skip
    example = MessageBatch(
        "msgbatch_x",
        "message_batch",
        "ended",
        MessageBatchRequestCounts(0, 0, 0, 0, 0),
        datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        datetime.datetime(2025, 1, 2, tzinfo=datetime.UTC),
    )

    def status(self, batch: MessageBatch) -> str:
        return str(batch.processing_status)

    def created(self, batch: MessageBatch) -> int:
        return math.floor(batch.created_at.timestamp())

    def reached(self, batch: MessageBatch) -> int:
        """Its end, else the moment a cancellation was asked for, else its creation."""
        moment = batch.ended_at or batch.cancel_initiated_at or batch.created_at
        return math.floor(moment.timestamp())

    def tally(self, batch: MessageBatch) -> Tally:
        counts = batch.request_counts
        failed = counts.errored + counts.canceled + counts.expired
        return Tally(counts.succeeded, failed, counts.processing + counts.succeeded + failed)

    def done(self, batch: MessageBatch) -> str:
        counts = batch.request_counts
        if counts.processing:
            return f"processing {counts.processing:,}"
        tally = self.tally(batch)
        return f"{tally.done:,}/{tally.total:,}"

    def failed(self, batch: MessageBatch) -> str:
        failed = self.tally(batch).failed
        return f"{failed:,}" if failed else ""

    def shortfall(self, batch: MessageBatch) -> str | None:
        """A batch whose cancellation was asked for, or with a request expired, did not
        complete; errored requests in an ended batch are a completed batch's failed ones."""
        counts = batch.request_counts
        if batch.cancel_initiated_at is not None:
            return "canceled"
        if counts.expired:
            return f"ended with {counts.expired:,} expired"
        return None

    def derived(self) -> Mapping[str, Callable[[MessageBatch], object]]:
        return _ANTHROPIC_DERIVED


def _anthropic_counts(batch: MessageBatch) -> str:
    counts = batch.request_counts
    if counts.processing:
        return f"processing {counts.processing:,}"
    total = counts.succeeded + counts.errored + counts.canceled + counts.expired
    return (
        f"{counts.succeeded:,}/{counts.errored:,}/{counts.canceled:,}/{counts.expired:,}"
        f" of {total:,}"
    )


_ANTHROPIC_DERIVED: Final[dict[str, Callable[[MessageBatch], object]]] = {
    "status": lambda batch: str(batch.processing_status),
    "created": lambda batch: human_time(unix(batch.created_at)),
    "ended": lambda batch: human_time(unix(batch.ended_at)),
    "expires": lambda batch: human_time(unix(batch.expires_at)),
    "counts": _anthropic_counts,
}
"""`status` is `processing_status`; times in UTC; `counts` as
succeeded/errored/canceled/expired of total, or how many are processing."""

OPENAI: Final = _OpenAI()
ANTHROPIC: Final = _Anthropic()
VIEWS: Final[dict[str, BatchView[Any]]] = {"openai": OPENAI, "anthropic": ANTHROPIC}
"""The view of each `--provider`."""
_BY_KIND: Final[dict[type, BatchView[Any]]] = {Batch: OPENAI, MessageBatch: ANTHROPIC}


def view_of(batch: AnyBatch) -> BatchView[Any]:
    """The view of `batch`'s kind."""
    return _BY_KIND[type(batch)]


def creation_order(batch: AnyBatch) -> tuple[float, str]:
    """Oldest first, as `sorted` takes it; the API lists the reverse."""
    return created_moment(batch), batch.id


def field_names() -> list[str]:
    """Every name `--fields` accepts, of either kind, and `source` (several projects)."""
    return sorted({"source", *OPENAI.names(), *ANTHROPIC.names()})
