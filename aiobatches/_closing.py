"""Closing that every caller can wait for, and that no cancellation leaves half done.

A close runs once, in a task its owner holds: callers await it through a
shield, so two concurrent `aclose()` calls both return only when it is done,
and a caller cancelled midway (a timeout, a task group, a second Ctrl-C)
leaves it running to the end. A close that was itself cancelled (the loop
shutting down) is started again by the next call.
"""

from __future__ import annotations

import abc
import asyncio
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import Final, Self


class ClosedByExit(abc.ABC):
    """An async context manager whose exit, however it comes, is `await self.aclose()`."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close it; safe to call any number of times."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class CloseOnce:
    """Runs `close` once for every caller of `__call__`."""

    def __init__(self, close: Callable[[], Awaitable[None]], name: str) -> None:
        self._close: Callable[[], Awaitable[None]] | None = close
        self._name = name
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        """Start the close if it is not running or done, and wait for it to finish."""
        task = self._task
        if task is not None and task is asyncio.current_task():
            return  # called back from inside the close itself (a stream closing its client)
        if task is None or task.cancelled():
            task = self._task = asyncio.get_running_loop().create_task(self._run(), name=self._name)
        await asyncio.shield(task)

    async def _run(self) -> None:
        # A coroutine of our own, so the task never holds a bound method of
        # an object that would rather be collected.
        close = self._close
        assert close is not None  # a close that finished is never run again
        await close()
        # Done for good: let go of the close, which holds its owner, so that the owner
        # (holding this) is freed by reference counting alone, with no cycle to collect.
        self._close = None


_GUARDS: Final[set[AsyncGenerator[None, None]]] = set()
"""Guards of abandoned-but-open resources, kept alive until the loop closes them."""
_TASKS: Final[set[asyncio.Task[None]]] = set()
"""Guard-closing tasks, held until done (asyncio keeps only weak references)."""


def guard(close: Callable[[], Awaitable[None]]) -> AsyncGenerator[None, None]:
    """An async generator that runs `close` when the event loop finalises it.

    Start it (`await anext(g)`) inside the loop: asyncio then tracks it, and
    `asyncio.run` closes every generator still open after the main coroutine
    ends, so a resource its user abandoned is closed before the loop is.
    Until then it is held here, so nothing it keeps alive is collected (and
    warned about) unclosed. `release(g)` ends it quietly once closed.
    """

    async def watch() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if generator in _GUARDS:  # abandoned: nobody closed it in time
                _GUARDS.discard(generator)
                await close()

    generator = watch()
    _GUARDS.add(generator)
    return generator


async def release(generator: AsyncGenerator[None, None]) -> None:
    """End a guard whose resource was closed the ordinary way."""
    _GUARDS.discard(generator)
    await generator.aclose()


async def guarded(
    owner: object, close: Callable[[], Awaitable[None]]
) -> AsyncGenerator[None, None]:
    """A started guard that runs `close` if `owner` is abandoned unclosed: when it is
    collected (in a task, soon after), or at the latest when the loop shuts down. A
    long-running loop that drops an unclosed one-shot stream gets its client closed."""
    generator = guard(close)
    await anext(generator)
    _close_when_collected(owner, generator)
    return generator


def _close_when_collected(owner: object, generator: AsyncGenerator[None, None]) -> None:
    """When `owner` is collected before the loop ends, close its guard in a task."""
    loop = asyncio.get_running_loop()

    def schedule() -> None:
        if generator in _GUARDS and not loop.is_closed():
            loop.call_soon_threadsafe(_close_in_task, loop, generator)

    weakref.finalize(owner, schedule)


def _close_in_task(loop: asyncio.AbstractEventLoop, generator: AsyncGenerator[None, None]) -> None:
    if generator in _GUARDS:
        _TASKS.add(task := loop.create_task(generator.aclose(), name="aiobatches guard close"))
        task.add_done_callback(_TASKS.discard)
