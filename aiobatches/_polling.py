"""What waiting and watching share: the client seam they poll through, checked ids, and
retrieving many batches at once, where a final error ends the work at once.

Whether an error is final is the retry policy's verdict (`error.retryable`); how long
to rest after one is `_retry.pause`. Nothing here copies their rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Final

from attrs import frozen

from ._chain import Fetch
from ._config import check_batch_id
from ._dialect import OPENAI, Dialect
from ._errors import APIError, APIResponseValidationError, APIStatusError
from ._response import Retrieved
from ._stream import OnInvalid

logger: Final = logging.getLogger("aiobatches")


@frozen
class Source:
    """What awaiting needs of a client, handed over by the client itself: its page fetch
    and its single retrieval, each with the client's retries and credentials."""

    fetch_page: Fetch
    retrieve: Callable[[str], Coroutine[Any, Any, Retrieved[Any]]]
    dialect: Dialect[Any] = OPENAI
    """The API they talk to: its name goes into a watch's checkpoint."""


def check_ids(setting: str, ids: Iterable[object]) -> list[str]:
    """The ids as a list, each checked as `retrieve_batch` checks one, so that a bad id
    fails before any request instead of when its turn to be retrieved comes."""
    if isinstance(ids, str):
        raise TypeError(f"{setting} must be a sequence of batch ids, not one str")
    return [check_batch_id(f"{setting}[{index}]", batch_id) for index, batch_id in enumerate(ids)]


def hint_of(error: APIError) -> float | None:
    """The pause a failure's server asked for (`Retry-After`), if any."""
    return error.retry_after if isinstance(error, APIStatusError) else None


def skippable(error: APIError, on_invalid: OnInvalid) -> bool:
    """Whether a failed retrieval found its batch malformed, and `on_invalid` skips it."""
    return (
        on_invalid == "skip"
        and isinstance(error, APIResponseValidationError)
        and error.batch_id is not None
    )


async def retrieve_all(
    source: Source, batch_ids: list[str], *, final: Callable[[str, APIError], bool]
) -> list[tuple[str, Retrieved[Any] | APIError]]:
    """Retrieve each id concurrently (the client's connection limit bounds them): each
    id's batch or API error, in order. An error `final(batch_id, error)` calls final is
    raised at once, the others cancelled; anything but an API error (a bug, cancellation)
    likewise."""
    if not batch_ids:
        return []
    loop = asyncio.get_running_loop()
    tasks = {loop.create_task(source.retrieve(i), name="aiobatches retrieve"): i for i in batch_ids}
    outcomes: dict[str, Retrieved[Any] | APIError] = {}
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                batch_id, error = tasks[task], task.exception()
                if error is None:
                    outcomes[batch_id] = task.result()
                elif isinstance(error, APIError) and not final(batch_id, error):
                    outcomes[batch_id] = error
                else:
                    raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
    return [(batch_id, outcomes[batch_id]) for batch_id in batch_ids]
