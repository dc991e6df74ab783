"""Where a command's batches come from: the API, or with `--demo` an embedded fake server
whose batches live on a sped-up clock. `serve --live` runs the same kind of server.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Final

from attrs import frozen

from .. import AIOBatchesError, Client
from ._common import EXIT_USAGE, CommandError

if TYPE_CHECKING:
    from ..testing import FakeBatchesServer

DEMO_KEY: Final = "sk-demo"
DEMO_WEBHOOK_SECRET: Final = "whsec_" + base64.b64encode(b"aiobatches demo webhooks").decode()
"""What the demo server signs its webhooks with, and `watch --demo --listen` verifies."""
DEMO_SPEED: Final = 60.0
"""The demo's clock (`list`, `watch`, `serve --live`) runs a minute per second, so that
batches move while one watches."""
WAIT_DEMO_SPEED: Final = 600.0
"""The clock of `wait --demo`'s server: ten minutes a second, for there is nothing to
watch but a count, so that the batches closest to finishing do within seconds."""
ARRIVAL: Final = 90.0
"""Seconds of a living server's clock between new batches (on average): at the demo's
speed, one every second and a half."""


@frozen
class Source:
    """A client, and the embedded server it talks to with `--demo` (None otherwise)."""

    client: Client
    demo: FakeBatchesServer | None


@contextlib.asynccontextmanager
async def connect(
    args: argparse.Namespace,
    *,
    arrivals: bool,
    speed: float = DEMO_SPEED,
    webhook_url: str | None = None,
) -> AsyncIterator[Source]:
    """A client of the API the options name; with `--demo`, of an embedded demo server
    whose clock runs `speed` times real time, where new batches arrive if `arrivals` (for
    the commands that follow batches over time), and which pushes webhooks signed with
    `DEMO_WEBHOOK_SECRET` to `webhook_url` as its batches finish, if given."""
    if not args.demo:
        try:
            client = Client(api_key=args.api_key, base_url=args.base_url, proxy=args.proxy)
        except (AIOBatchesError, ValueError, TypeError) as error:  # a bad key, URL or proxy
            raise CommandError(str(error), EXIT_USAGE) from None
        async with client:
            yield Source(client, None)
        return
    pushing = {} if webhook_url is None else {"webhook_secret": DEMO_WEBHOOK_SECRET}
    server = living_server(
        speed=speed, arrivals=arrivals, api_key=DEMO_KEY, webhook_url=webhook_url, **pushing
    )
    async with server, Client(api_key=DEMO_KEY, base_url=server.url) as client:
        yield Source(client, server)


def living_server(*, speed: float, arrivals: bool, **options: Any) -> FakeBatchesServer:
    """A fake server of seeded batches living on a clock that runs `speed` times real time
    and starts at the same moment every run, so every run has the same ids; `options` are
    FakeBatchesServer's."""
    # aiohttp.web only for the demo and serve
    from ..testing import AcceleratedClock, FakeBatchesServer  # noqa: PLC0415

    return FakeBatchesServer(
        clock=AcceleratedClock(speed=speed),
        arrival_every=ARRIVAL if arrivals else 0.0,
        record_requests=0,  # nothing reads its log, and a watch or a server runs for hours
        **options,
    )
