"""Waking a resting watch: the batches it was told about (a webhook said they finished),
to retrieve now instead of at the next cycle, coalesced and bounded.
"""

from __future__ import annotations

import asyncio
from typing import Final

from . import _retry

MAX_PENDING: Final = 1_000
"""More notifications than this before the watch takes them: one ordinary cycle instead."""


class Wakeups:
    """The batch ids a watch was notified of, in order, each once; and its rest, which a
    notification ends at once."""

    def __init__(self) -> None:
        self._pending: dict[str, None] = {}
        self._flooded = False
        self._event = asyncio.Event()

    def add(self, batch_id: str) -> None:
        """Note a batch to retrieve now; a repeat of one still pending changes nothing."""
        if not self._flooded:
            self._pending[batch_id] = None
            if len(self._pending) > MAX_PENDING:
                self._pending.clear()
                self._flooded = True
        self._event.set()

    @property
    def pending(self) -> bool:
        """Whether some batch waits to be retrieved."""
        return bool(self._pending)

    @property
    def flooded(self) -> bool:
        """Whether so many came that one ordinary cycle serves better than retrievals."""
        return self._flooded

    def take(self) -> list[str]:
        """The ids to retrieve now, oldest notification first; none is pending after."""
        batch_ids = list(self._pending)
        self._pending.clear()
        self._event.clear()
        return batch_ids

    def settle(self) -> None:
        """A cycle begins: it looks at every followed batch, so what was pending is served."""
        self._pending.clear()
        self._flooded = False
        self._event.clear()

    async def rest(self, delay: float) -> bool:
        """Sleep `delay` seconds through aiobatches' sleeper, or until a notification;
        whether the sleep was done (the sleeper's word: a test's may take no time)."""
        if self._event.is_set():
            return False
        loop = asyncio.get_running_loop()
        sleeping = loop.create_task(_retry.sleep(delay), name="aiobatches watch sleep")
        waking = loop.create_task(self._event.wait(), name="aiobatches watch wakeup")
        try:
            done, _ = await asyncio.wait({sleeping, waking}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            waking.cancel()
            await asyncio.wait({sleeping, waking})
        if sleeping not in done:
            return False
        sleeping.result()  # a sleeper's own error (a test's hook, say) reaches the watch
        return True
