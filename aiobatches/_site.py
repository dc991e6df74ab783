"""An aiohttp.web app on a port, as the fake server and `watch --listen` serve: started,
closed without waiting for the requests still being answered, and named by its URL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web


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
    ) -> None:
        self._host = host
        self._port = port
        self._routes = routes
        self._max_body = max_body
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
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def close(self) -> None:
        """Stop serving and release the port; idempotent."""
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
