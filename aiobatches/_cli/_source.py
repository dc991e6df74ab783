"""Where a command's batches come from: the API, or with `--demo` an embedded fake server
whose batches live on a sped-up clock. `serve --live` runs the same kind of server.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from attrs import frozen

from .. import AIOBatchesError, AnthropicClient, Client
from ._common import EXIT_USAGE, CommandError
from ._options import KEY_VARIABLE

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


AnyClient: TypeAlias = Client | AnthropicClient
"""A client of either provider: the same streams, waits and watches of its own batches."""


@frozen
class Source:
    """The clients the options name, by project (one, under its project or None, unless
    several `--project`s were given), and the embedded server they talk to with `--demo`
    (None otherwise)."""

    clients: Mapping[str | None, AnyClient]
    demo: FakeBatchesServer | None

    @property
    def client(self) -> AnyClient:
        """The first (with one project or none, the only) client."""
        return next(iter(self.clients.values()))


def project_key_variable(project: str) -> str:
    """The variable holding `project`'s own key: `OPENAI_API_KEY_PROJ_ABC123` for
    `proj_abc123` (upper-cased, every character but an ASCII letter or digit as `_`)."""
    return f"{KEY_VARIABLE}_{re.sub(r'[^A-Za-z0-9]', '_', project).upper()}"


def _key(args: argparse.Namespace, project: str | None) -> str | None:
    """`--api-key` for every project; else the project's own variable, when set; else None,
    for the client to read the shared one."""
    if args.api_key is not None or project is None:
        return str(args.api_key) if args.api_key is not None else None
    return os.environ.get(project_key_variable(project)) or None


def _client(
    args: argparse.Namespace, project: str | None, *, base_url: str | None, demo: bool
) -> AnyClient:
    """A client of `--provider`; with `demo`, of the demo server at `base_url`, keyed with
    the demo's key and with no proxy."""
    key = DEMO_KEY if demo else _key(args, project)
    proxy = None if demo else args.proxy
    try:
        if args.provider == "anthropic":
            return AnthropicClient(key, base_url=base_url, proxy=proxy)
        return Client(api_key=key, base_url=base_url, project=project, proxy=proxy)
    except (AIOBatchesError, ValueError, TypeError) as error:  # a bad key, URL or proxy
        raise CommandError(_whose(args, project, demo=demo) + str(error), EXIT_USAGE) from None


def _whose(args: argparse.Namespace, project: str | None, *, demo: bool) -> str:
    """Which project a client's error is of, and the variable its key came from, if its own:
    with several projects a bad key is otherwise impossible to place."""
    if project is None:
        return ""
    variable = project_key_variable(project)
    if not demo and args.api_key is None and os.environ.get(variable):
        return f"project {project} (key from ${variable}): "
    return f"project {project}: "


def _shared_variables(projects: list[str | None]) -> str | None:
    """The usage error of two projects whose ids differ only where the variable name has
    `_`: both would take their key from one variable, surely meant for only one of them."""
    seen: dict[str, str] = {}
    for project in projects:
        if project is None:
            continue
        variable = project_key_variable(project)
        if variable in seen:
            return (
                f"--project {seen[variable]} and --project {project} would both take their key"
                f" from ${variable}; give --api-key, or list them one at a time"
            )
        seen[variable] = project
    return None


@contextlib.asynccontextmanager
async def connect(
    args: argparse.Namespace,
    *,
    arrivals: bool,
    speed: float = DEMO_SPEED,
    webhook_url: str | None = None,
) -> AsyncIterator[Source]:
    """Clients of the API the options name (one per `--project`); with `--demo`, of an
    embedded demo server whose clock runs `speed` times real time, where new batches
    arrive if `arrivals` (for the commands that follow batches over time), and which pushes
    webhooks signed with `DEMO_WEBHOOK_SECRET` to `webhook_url` as its batches finish, if
    given. With `--provider anthropic` the demo's batches are its Message Batches."""
    projects: list[str | None] = list(args.project or [None])
    shared = None if args.demo or args.api_key is not None else _shared_variables(projects)
    if shared is not None:
        raise CommandError(shared, EXIT_USAGE)
    async with contextlib.AsyncExitStack() as opened:
        server = None
        base_url = args.base_url
        if args.demo:
            pushing = {} if webhook_url is None else {"webhook_secret": DEMO_WEBHOOK_SECRET}
            server = living_server(
                speed=speed,
                arrivals=arrivals,
                api_key=DEMO_KEY,
                webhook_url=webhook_url,
                **pushing,
            )
            await opened.enter_async_context(server)
            base_url = server.anthropic_url if args.provider == "anthropic" else server.url
        clients = {
            project: _client(args, project, base_url=base_url, demo=server is not None)
            for project in projects
        }
        for client in clients.values():
            await opened.enter_async_context(client)
        yield Source(clients, server)


def anthropic_id(openai_id: str) -> str:
    """The id the demo server serves a batch under as a Message Batch (`batch_X` as
    `msgbatch_X`), so that a pick among its OpenAI batches names the same Message Batch."""
    return "msgbatch_" + openai_id.removeprefix("batch_")


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
