"""An aiohttp.web app on a port, as the fake server and `watch --listen` serve: started,
closed without waiting for the requests still being answered, and named by its URL; open
to anyone, it can bound how many connections it holds and for how long.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from attrs import frozen

_GUARD_TICK: Final = 1.0
"""Seconds between two looks at the open connections of a bounded site."""


@frozen
class Bounds:
    """How much a site open to anyone holds: at most `connections` at once (the newest
    beyond are closed), each open `lifetime` seconds at most, its headers' time included,
    so that senders trickling bytes, or holding connections idle, hold nothing for long."""

    connections: int
    lifetime: float


class Site:
    """An aiohttp.web app on a port: started and closed, with the requests still being
    answered cancelled at closing, so closing never waits for them; a request body over
    `max_body` bytes is refused (413) as it is read."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: Callable[[web.Application], None],
        *,
        max_body: int = 1024**2,
        bounds: Bounds | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._routes = routes
        self._max_body = max_body
        self._bounds = bounds
        self._guard: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """`http://host:port` of the running app."""
        if self._url is None:
            raise RuntimeError("the server is not running; use `async with` or `await start()`")
        return self._url

    async def start(self) -> None:
        """Bind the port and start serving."""
        app = web.Application(middlewares=[self._in_flight], client_max_size=self._max_body)
        self._routes(app)
        app.on_shutdown.append(self._cancel_in_flight)
        # A bounded site closes an idle connection once its lifetime could be over.
        idle: dict[str, Any] = {}
        if self._bounds is not None:
            idle["keepalive_timeout"] = self._bounds.lifetime
        runner = web.AppRunner(app, access_log=None, **idle)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        if self._bounds is not None and runner.server is not None:
            self._guard = asyncio.get_running_loop().create_task(
                _guard(runner.server, self._bounds), name="aiobatches site guard"
            )
        host, port = runner.addresses[0][:2]
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving and release the port; idempotent."""
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await guard
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _in_flight(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Run `handler`, known as in flight until it returns, so `close()` can cancel it."""
        task = asyncio.current_task()
        assert task is not None  # aiohttp runs every handler in a task of its own
        self._handlers.add(task)
        try:
            return await handler(request)
        finally:
            self._handlers.discard(task)

    async def _cancel_in_flight(self, _: web.Application) -> None:
        """Cancel every request still being answered, and wait until each has stopped."""
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.wait(handlers)


async def _guard(server: web.Server, bounds: Bounds) -> None:
    """Close, every `_GUARD_TICK` seconds, the connections beyond `bounds.connections`
    (the newest) and those open longer than `bounds.lifetime`."""
    loop = asyncio.get_running_loop()
    opened: dict[int, float] = {}
    while True:
        now = loop.time()
        connections = server.connections  # in the order they were opened
        opened = {id(c): opened.get(id(c), now) for c in connections}
        extra = len(connections) - bounds.connections
        for rank, connection in enumerate(reversed(connections)):  # the newest first
            if rank < extra or now - opened[id(connection)] > bounds.lifetime:
                connection.force_close()
        await asyncio.sleep(_GUARD_TICK)
