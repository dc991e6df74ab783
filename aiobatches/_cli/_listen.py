"""`watch --listen HOST:PORT`: OpenAI's webhooks received in the watch's own process, each
verified one waking the watch to retrieve its batch at once.

Any path takes them, as whatever proxy or tunnel forwards them may rewrite it. A POST
answers 200 when verified and 400 when not, saying no more (who probes learns nothing);
a body over 1 MiB answers 413 as soon as that is known, one that does not arrive within
`READ_TIMEOUT` seconds 408, another method 405. What was refused is told to the
operator, at most once every `QUIET` seconds, so a flood of bad requests cannot flood the
terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Final, Self

from aiohttp import web
from attrs import define

from .. import InvalidWebhookError, WebhookEvent, verify_webhook
from .._site import Bounds, Site
from .._webhooks import MAX_BODY_BYTES, key_of
from ._common import EXIT_FAILED, EXIT_USAGE, CommandError, reason

READ_TIMEOUT: Final = 10.0
"""Seconds a webhook's body has to arrive once its headers have."""
BOUNDS: Final = Bounds(connections=32, lifetime=30.0)
"""What anyone who reaches the port can hold: 32 connections (a megabyte of body each at
most), none open longer than 30 s, its headers' time included, however it trickles."""
QUIET: Final = 5.0
"""Seconds between two reports of refused requests; those in between are counted."""
SECRET_VARIABLE: Final = "OPENAI_WEBHOOK_SECRET"  # noqa: S105 - where it is, not what
_WILDCARDS: Final = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - named to be recognised


@define
class Tally:
    """What the listener has received, for the watch's view: where, and how many."""

    url: str
    received: int = 0
    """Verified webhooks."""
    refused: int = 0
    """Requests answered with anything but 200."""


def secret_from_environment() -> str:
    """The webhook secret in `OPENAI_WEBHOOK_SECRET`, checked: never a flag, so that it
    shows in no process listing or shell history; missing or malformed is a usage error
    that does not show it."""
    secret = os.environ.get(SECRET_VARIABLE, "")
    if not secret:
        raise CommandError(
            f"--listen verifies webhooks with the secret OpenAI gave for the endpoint: set"
            f" {SECRET_VARIABLE} (it is never taken as a flag)",
            EXIT_USAGE,
        )
    try:
        key_of(secret)
    except ValueError as error:
        raise CommandError(f"{SECRET_VARIABLE}: {error}", EXIT_USAGE) from None
    return secret


class Listener:
    """An aiohttp.web receiver of signed webhooks on `host:port`, any path.

    Each verified event is handed to `heard`; the batch ids of `batch.*` events go to the
    watch given to `wake` (until then, none is waiting for news: its first look reads every
    batch anyway). Refused requests go to `refused` as a line, rate-limited.
    """

    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        *,
        heard: Callable[[WebhookEvent], None],
        refused: Callable[[str], None],
    ) -> None:
        self._secret = secret
        self._heard = heard
        self._refused = refused
        self._site = Site(host, port, self._route, max_body=MAX_BODY_BYTES, bounds=BOUNDS)
        self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._wildcard = host in _WILDCARDS
        self._notify: Callable[[str], None] | None = None
        self._reports = Reports(self._tell)
        self._logs = Diverted(self._reports)
        self.tally = Tally("")

    async def __aenter__(self) -> Self:
        try:
            await self._site.start()
        except OSError as error:  # in use, not ours to bind, or an unknown host
            raise CommandError(
                f"cannot listen on {self._address}: {reason(error)}", EXIT_FAILED
            ) from None
        self.tally.url = self._site.url + "/"
        self._logs.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._site.close()
        finally:
            self._logs.stop()

    @property
    def push_url(self) -> str:
        """Where a sender on this machine reaches it (bound to every address: loopback,
        IPv6's for `::`, on which asyncio listens for IPv6 only)."""
        if not self._wildcard:
            return self.tally.url
        port = self._site.url.rpartition(":")[2]
        loopback = "[::1]" if self._site.url.startswith("http://[") else "127.0.0.1"
        return f"http://{loopback}:{port}/webhooks"

    @contextlib.contextmanager
    def telling(
        self, *, heard: Callable[[WebhookEvent], None], refused: Callable[[str], None]
    ) -> Iterator[None]:
        """Within the block, tell `heard` and `refused` instead of those given at first."""
        before = self._heard, self._refused
        self._heard, self._refused = heard, refused
        try:
            yield
        finally:
            self._heard, self._refused = before

    def _tell(self, line: str) -> None:
        self._refused(line)  # whichever `telling` points it at now

    def wake(self, notify: Callable[[str], None]) -> None:
        """From now on, tell `notify` (a watch's) the batch of each verified event."""
        self._notify = notify

    def _route(self, app: web.Application) -> None:
        app.router.add_route("*", "/{path:.*}", self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return self._refuse(f"a {request.method} request", 405, headers={"Allow": "POST"})
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        try:
            event = verify_webhook(body, request.headers, secret=self._secret)
        except InvalidWebhookError as error:
            return self._refuse(f"an unverified webhook ({error})", 400)
        self.tally.received += 1
        if event.batch_id is not None and self._notify is not None:
            self._notify(event.batch_id)
        self._heard(event)
        return web.Response(text="ok\n")

    async def _body(self, request: web.Request) -> bytes | web.Response:
        """The request's body, or the answer refusing it: over 1 MiB (said by its length,
        or as it is read), not sent in time, or cut short."""
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            return self._refuse("a body over 1 MiB", 413)
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse("a body over 1 MiB", 413)
        except TimeoutError:
            return self._refuse(f"a body not sent within {READ_TIMEOUT:g} s", 408)
        except (ConnectionError, asyncio.IncompleteReadError):  # the sender left midway
            return self._refuse("a body cut short by its sender", 400)

    def _refuse(
        self, what: str, status: int, headers: dict[str, str] | None = None
    ) -> web.Response:
        """Answer `status`, saying nothing of why, and tell the operator (now and then)."""
        self.tally.refused += 1
        self._reports.report(f"refused {what} on {self.tally.url}: answered {status}")
        return web.Response(status=status, text=f"{_WORDS[status]}\n", headers=headers)


class Reports:
    """Lines for the operator, one every `QUIET` seconds at most: those in between are
    counted, and told with the latest of them once the quiet spell is over (or the
    listener closes), so a flood shows as a count and its end is never lost."""

    def __init__(self, tell: Callable[[str], None]) -> None:
        self._tell = tell
        self._told_at = -float("inf")
        self._held = 0
        self._latest = ""
        self._timer: asyncio.TimerHandle | None = None

    def report(self, line: str) -> None:
        now = time.monotonic()
        if now - self._told_at >= QUIET:
            self.flush()
            self._tell(line)
            self._told_at = now
            return
        self._held += 1
        self._latest = line
        if self._timer is None:
            delay = self._told_at + QUIET - now
            self._timer = asyncio.get_running_loop().call_later(delay, self.flush)

    def flush(self) -> None:
        """Tell what was held back, if anything."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held:
            more = f"{self._held:,} more since the last report"
            self._tell(f"{more}; the latest: {self._latest}")
            self._told_at = time.monotonic()
            self._held = 0


class Diverted(logging.Handler):
    """While a server open to anyone runs (the listener, `serve`), what aiohttp's server
    and asyncio log (a malformed request, a sender gone, no file descriptor left to accept
    with) goes to the operator as rate-limited lines, never as tracebacks."""

    _LOGGERS: Final = ("aiohttp.server", "aiohttp.web", "asyncio")

    def __init__(self, reports: Reports) -> None:
        super().__init__(logging.WARNING)
        self._reports = reports

    def emit(self, record: logging.LogRecord) -> None:
        first = record.getMessage().partition("\n")[0]
        self._reports.report(f"{record.name}: {first}")

    def start(self) -> None:
        for name in self._LOGGERS:
            logging.getLogger(name).addHandler(self)

    def stop(self) -> None:
        """Stop diverting, and tell what the reports still held back."""
        for name in self._LOGGERS:
            logging.getLogger(name).removeHandler(self)
        self._reports.flush()


_WORDS: Final = {
    400: "invalid webhook",
    405: "method not allowed: webhooks are POSTed",
    408: "request timeout",
    413: "body too large",
}
