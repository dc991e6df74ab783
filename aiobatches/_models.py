"""The batch objects of `GET /v1/batches`, as frozen attrs classes.

Pure data: no I/O, no parsing. Field names and optionality follow OpenAI's
schema; a field with a default may be absent or null in the JSON, and both
give the default. Timestamps and counts stay `int` (Unix seconds for
timestamps), as the API sends them. A `Batch` hashes by its id, the models
of scalars by value, and the models holding a list are unhashable.
"""

# No `from __future__ import annotations`: the annotations are resolved here,
# once, so that they need no lookup in the module the classes claim below.
import enum
from typing import Final

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
    FAILED = "failed"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


FINISHED_STATUSES: Final = frozenset(
    {BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLED}
)
"""The states a batch never leaves; any other, including one added later, is unfinished."""


@frozen(weakref_slot=False)
class BatchError:
    """One error of a failed batch, e.g. a bad line of the input file; any part may be `None`."""

    code: str | None = None
    line: int | None = field(default=None, metadata={NUMERIC_STRING: True})
    message: str | None = None
    param: str | None = None


@frozen(weakref_slot=False)
class BatchErrors:
    """The errors a batch collected; `object` is `"list"` and `data` empty unless sent.

    A lone error object where the list belongs (as Azure OpenAI's published spec has it)
    is read as a list of that one error.

    Unhashable, whatever it holds: its `data` is a list.
    """

    object: str = "list"
    data: list[BatchError] = field(factory=list)

    __hash__ = None  # type: ignore[assignment]


@frozen(weakref_slot=False)
class BatchRequestCounts:
    """How many of the batch's requests there are, and how many completed or failed."""

    total: int
    completed: int
    failed: int


@frozen(weakref_slot=False)
class InputTokensDetails:
    """Breakdown of input tokens: how many came from the prompt cache."""

    cached_tokens: int


@frozen(weakref_slot=False)
class OutputTokensDetails:
    """Breakdown of output tokens: how many were spent on reasoning."""

    reasoning_tokens: int


@frozen(weakref_slot=False)
class BatchUsage:
    """Token usage of a batch; only batches created after 2025-09-07 carry it, once started."""

    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


@frozen(weakref_slot=False)
class Batch:
    """One batch job: the seven fields the API always sends, then the optional ones (`None` when
    absent or null; older batches have no `model` or `usage`).

    Equal when every field is equal; hashed by `id` alone, so batches work in sets and as
    dict keys. Two snapshots of one batch that differ are two distinct elements of a set;
    key by `batch.id` to keep one per batch.
    """

    id: str
    object: str
    endpoint: str
    input_file_id: str
    completion_window: str
    status: BatchStatus | str
    created_at: int
    model: str | None = None
    errors: BatchErrors | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: BatchRequestCounts | None = None
    metadata: dict[str, str] | None = None
    usage: BatchUsage | None = None

    def __hash__(self) -> int:
        # Equal batches have equal ids, so this agrees with `==`; unlike a hash of every
        # field, it never fails on the list in `errors` or the dict in `metadata`.
        return hash(self.id)

    @property
    def is_finished(self) -> bool:
        """Whether the batch is completed, failed, expired or cancelled: it will not change."""
        return self.status in FINISHED_STATUSES


@frozen(weakref_slot=False)
class BatchPage:
    """One page of the list: its batches, the cursors around them, and whether more follow.

    Unhashable, whatever it holds: its `data` is a list.
    """

    data: list[Batch]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: str = "list"

    __hash__ = None  # type: ignore[assignment]


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
):
    _public.__module__ = "aiobatches"
del _public
