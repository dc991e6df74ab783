"""The batch objects of OpenAI's `GET /v1/batches` and Anthropic's `GET
/v1/messages/batches`, as frozen attrs classes.

Pure data: no I/O, no parsing. Field names and optionality follow each API's
schema; a field with a default may be absent or null in the JSON, and both
give the default. OpenAI's timestamps and counts stay `int` (Unix seconds for
timestamps), as the API sends them; Anthropic's timestamps are aware
`datetime`s, read from RFC 3339. A batch hashes by its id, the models of
scalars by value, and the models holding a list are unhashable.
"""

# No `from __future__ import annotations`: the annotations are resolved here,
# once, so that they need no lookup in the module the classes claim below.
import datetime
import enum
import math
from typing import Final, Generic, TypeVar

from attrs import field, frozen

NUMERIC_STRING: Final = "aiobatches.numeric_string"
"""Field metadata: an `int` that some servers send as a string of digits (Azure OpenAI's
published spec has `BatchError.line` as `"1"`); it is read as that int."""

# Every model is declared with `weakref_slot=False`: the converter builds
# instances through a twin class with the same slots, which CPython allows
# only when no `__weakref__` slot follows them.


class BatchStatus(enum.StrEnum):
    """The eight documented batch states; a state added later arrives as a plain `str`."""

    VALIDATING = "validating"
    """The input file is being checked before the batch can start."""
    FAILED = "failed"
    """The input file failed validation; `errors` says why. Finished."""
    IN_PROGRESS = "in_progress"
    """The batch's requests are running."""
    FINALIZING = "finalizing"
    """The requests are done and the output files are being written."""
    COMPLETED = "completed"
    """The output files are ready. Finished."""
    EXPIRED = "expired"
    """The completion window ran out first; what completed is in the output file. Finished."""
    CANCELLING = "cancelling"
    """A cancellation was asked for and is under way."""
    CANCELLED = "cancelled"
    """The batch was cancelled. Finished."""


FINISHED_STATUSES: Final = frozenset(
    {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}
)
"""The states a batch never leaves; any other, including one added later, is unfinished."""


@frozen(weakref_slot=False)
class BatchError:
    """One error of a failed batch, e.g. a bad line of the input file; any part may be `None`."""

    code: str | None = None
    """A machine-readable error code, e.g. `"invalid_json_line"`."""
    line: int | None = field(default=None, metadata={NUMERIC_STRING: True})
    """The line of the input file the error is about (a numeric string is read as a number)."""
    message: str | None = None
    """What went wrong, for a person to read."""
    param: str | None = None
    """The parameter the error is about."""


@frozen(weakref_slot=False)
class BatchErrors:
    """The errors a batch collected; `object` is `"list"` and `data` empty unless sent.

    A lone error object where the list belongs (as Azure OpenAI's published spec has it)
    is read as a list of that one error.

    Unhashable, whatever it holds: its `data` is a list.
    """

    object: str = "list"
    """The object type, `"list"`."""
    data: list[BatchError] = field(factory=list)
    """The errors, in the order the API sent them."""

    __hash__ = None  # type: ignore[assignment]


@frozen(weakref_slot=False)
class BatchRequestCounts:
    """How many of the batch's requests there are, and how many completed or failed."""

    total: int
    """How many requests the input file holds."""
    completed: int
    """How many requests have completed."""
    failed: int
    """How many requests have failed."""


@frozen(weakref_slot=False)
class InputTokensDetails:
    """Breakdown of input tokens: how many came from the prompt cache."""

    cached_tokens: int
    """How many of the input tokens came from the prompt cache."""


@frozen(weakref_slot=False)
class OutputTokensDetails:
    """Breakdown of output tokens: how many were spent on reasoning."""

    reasoning_tokens: int
    """How many of the output tokens were spent on reasoning."""


@frozen(weakref_slot=False)
class BatchUsage:
    """Token usage of a batch; only batches created after 2025-09-07 carry it, once started."""

    input_tokens: int
    """Tokens read, over all of the batch's requests."""
    input_tokens_details: InputTokensDetails
    """What the input tokens were made of."""
    output_tokens: int
    """Tokens written, over all of the batch's requests."""
    output_tokens_details: OutputTokensDetails
    """What the output tokens were spent on."""
    total_tokens: int
    """Input and output tokens together."""


@frozen(weakref_slot=False)
class Batch:
    """One batch job: the seven fields the API always sends, then the optional ones (`None` when
    absent or null; older batches have no `model` or `usage`).

    Equal when every field is equal; hashed by `id` alone, so batches work in sets and as
    dict keys. Two snapshots of one batch that differ are two distinct elements of a set;
    key by `batch.id` to keep one per batch.
    """

    id: str
    """The batch's id, e.g. `"batch_abc123"`; the `after` cursor to resume past it."""
    object: str
    """The object type, `"batch"`."""
    endpoint: str
    """The API endpoint the batch's requests go to, e.g. `"/v1/chat/completions"`."""
    input_file_id: str
    """The id of the uploaded file of requests."""
    completion_window: str
    """The time the batch has to finish in, e.g. `"24h"`."""
    status: BatchStatus | str
    """Where the batch is in its life; a state this version does not know stays a `str`."""
    created_at: int
    """When the batch was created, in Unix seconds."""
    model: str | None = None
    """The model the batch's requests ran on."""
    errors: BatchErrors | None = None
    """Why the batch failed, e.g. its input file's bad lines."""
    output_file_id: str | None = None
    """The id of the file of successful responses."""
    error_file_id: str | None = None
    """The id of the file of requests that failed."""
    in_progress_at: int | None = None
    """When the batch started running, in Unix seconds."""
    expires_at: int | None = None
    """When the batch's completion window ends, in Unix seconds."""
    finalizing_at: int | None = None
    """When the batch started finalizing, in Unix seconds."""
    completed_at: int | None = None
    """When the batch completed, in Unix seconds."""
    failed_at: int | None = None
    """When the batch failed, in Unix seconds."""
    expired_at: int | None = None
    """When the batch expired, in Unix seconds."""
    cancelling_at: int | None = None
    """When the batch's cancellation was asked for, in Unix seconds."""
    cancelled_at: int | None = None
    """When the batch was cancelled, in Unix seconds."""
    request_counts: BatchRequestCounts | None = None
    """How many of the batch's requests completed or failed so far."""
    metadata: dict[str, str] | None = None
    """The key-value pairs the batch was created with."""
    usage: BatchUsage | None = None
    """The tokens the batch used."""

    def __hash__(self) -> int:
        # Equal batches have equal ids, so this agrees with `==`; unlike a hash of every
        # field, it never fails on the list in `errors` or the dict in `metadata`.
        return hash(self.id)

    @property
    def is_finished(self) -> bool:
        """Whether the batch is completed, failed, expired or cancelled: it will not change."""
        return self.status in FINISHED_STATUSES


class MessageBatchStatus(enum.StrEnum):
    """Anthropic's three processing states; a state added later arrives as a plain `str`."""

    IN_PROGRESS = "in_progress"
    """The batch's requests are being processed."""
    CANCELING = "canceling"
    """A cancellation was asked for and is under way."""
    ENDED = "ended"
    """Every request succeeded, errored, was canceled or expired. Finished."""


@frozen(weakref_slot=False)
class MessageBatchRequestCounts:
    """How many of a Message Batch's requests are in each state; all but `processing` stay
    0 until the whole batch ends."""

    processing: int
    """Requests still being processed."""
    succeeded: int
    """Requests that succeeded (0 until the batch ends)."""
    errored: int
    """Requests that failed (0 until the batch ends)."""
    canceled: int
    """Requests canceled before they were processed (0 until the batch ends)."""
    expired: int
    """Requests not processed before the batch expired (0 until the batch ends)."""


@frozen(weakref_slot=False)
class MessageBatch:
    """One Anthropic Message Batch, as `GET /v1/messages/batches` lists it."""

    id: str
    """The batch's id, e.g. `"msgbatch_013Zva2CMHLNnXjNJJKqJ2EF"`."""
    type: str
    """The object type, `"message_batch"`."""
    processing_status: MessageBatchStatus | str
    """A `MessageBatchStatus`, or a plain `str` for a state added after this release."""
    request_counts: MessageBatchRequestCounts
    """How many requests are in each state."""
    created_at: datetime.datetime
    """When the batch was created (aware, from RFC 3339)."""
    expires_at: datetime.datetime
    """When processing ends if it has not yet: 24 hours after creation."""
    ended_at: datetime.datetime | None = None
    """When processing ended; `None` until it has."""
    cancel_initiated_at: datetime.datetime | None = None
    """When a cancellation was asked for, if one was."""
    archived_at: datetime.datetime | None = None
    """When the batch was archived and its results became unavailable."""
    results_url: str | None = None
    """Where the results (`.jsonl`) are, once processing has ended."""

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def is_finished(self) -> bool:
        """Whether processing has ended: the batch will not change (save `archived_at`)."""
        return self.processing_status == MessageBatchStatus.ENDED


AnyBatch = Batch | MessageBatch
"""An item of any API this library lists."""
B = TypeVar("B", bound=Batch | MessageBatch)
"""The item of one client's API, the same through its streams, waits and watches."""


@frozen(weakref_slot=False)
class BatchPage(Generic[B]):
    """One page of a list: its batches (`Batch`, or `MessageBatch` from Anthropic), the
    cursors around them, and whether more follow.

    Unhashable, whatever it holds: its `data` is a list.
    """

    data: list[B]
    """The page's batches, in the order the API sent them."""
    first_id: str | None
    """The id of the page's first batch; `None` if the page is empty."""
    last_id: str | None
    """The id of the page's last batch: the `after` cursor of the next page."""
    has_more: bool
    """Whether more batches follow this page."""
    object: str = "list"
    """The object type, `"list"`."""

    __hash__ = None  # type: ignore[assignment]


def created_moment(batch: AnyBatch) -> float:
    """When `batch` was created, in Unix seconds: OpenAI's whole seconds, Anthropic's to
    the microsecond (a float holds every microsecond until the year 2242): the order of
    every listing and merge, and what `since` is compared with."""
    created = batch.created_at
    if isinstance(created, datetime.datetime):
        return created.timestamp()
    return created


def created_second(batch: AnyBatch) -> int:
    """The whole second `batch` was created in: a watch's horizon is a second, and each
    cycle lists past every batch of it, in whatever order a server lists one second's
    batches (Anthropic's, to the microsecond, as well as OpenAI's)."""
    return math.floor(created_moment(batch))


# Reprs, error messages (cattrs' too) and pickles name the models as users import
# them, `aiobatches.Batch`, never by this private module (httpx does the same).
for _public in (
    BatchStatus,
    BatchError,
    BatchErrors,
    BatchRequestCounts,
    InputTokensDetails,
    OutputTokensDetails,
    BatchUsage,
    Batch,
    BatchPage,
    MessageBatchStatus,
    MessageBatchRequestCounts,
    MessageBatch,
):
    _public.__module__ = "aiobatches"
del _public
