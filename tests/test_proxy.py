"""Proxies and netrc as the environment sets them, through a real forward proxy on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import pytest
from _helpers import API_KEY, ids, served_ids
from yarl import URL

import aiobatches
from aiobatches.testing import FakeBatchesServer

LIMIT: Final = 10
COUNT: Final = 25
PAGES: Final = 3
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "proxy-authorization"}
)

pytestmark = pytest.mark.server(count=COUNT)


class ForwardProxy:
    """A small HTTP forward proxy on 127.0.0.1: one request per connection, relayed and counted.

    It reads `GET http://host:port/path?query HTTP/1.1` and its headers, sends the
    request on to the target with `Connection: close`, and relays the answer,
    telling the client to close too.
    """

    def __init__(self) -> None:
        self.targets: list[str] = []
        """The absolute URL of every request relayed, in order."""
        self.failures: list[BaseException] = []
        """Anything that went wrong while relaying (a test expects none)."""
        self.url = ""
        self._server: asyncio.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
        for relay in self._relays:
            relay.cancel()
        if self._relays:
            await asyncio.wait(self._relays)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        relay = asyncio.current_task()
        assert relay is not None
        self._relays.add(relay)
        try:
            await self._relay(reader, writer)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.failures.append(error)
        finally:
            writer.close()
            self._relays.discard(relay)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *fields = head.split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        self.targets.append(target)
        url = URL(target)
        kept = [
            field
            for field in fields
            if field and field.partition(":")[0].strip().lower() not in _HOP_BY_HOP
        ]
        upstream_reader, upstream = await asyncio.open_connection(url.host, url.port)
        try:
            lines = [f"{method} {url.raw_path_qs} HTTP/1.1", *kept, "Connection: close", "", ""]
            upstream.write("\r\n".join(lines).encode("latin-1"))
            await upstream.drain()
            answer = await upstream_reader.read()
        finally:
            upstream.close()
        status_and_headers, _, body = answer.partition(b"\r\n\r\n")
        answer_fields = [
            field
            for field in status_and_headers.split(b"\r\n")
            if not field.lower().startswith(b"connection:")
        ]
        writer.write(b"\r\n".join([*answer_fields, b"Connection: close", b"", body]))
        await writer.drain()


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    """A running forward proxy."""
    async with ForwardProxy() as running:
        yield running
    assert running.failures == []


async def list_all(server: FakeBatchesServer, **kwargs: Any) -> list[aiobatches.Batch]:
    """Every batch, listed by an owned-session client over 10-batch pages."""
    async with aiobatches.Client(api_key=API_KEY, base_url=server.url, **kwargs) as client:
        return await client.list_batches(limit=LIMIT).to_list()


def proxied_every_page(proxy: ForwardProxy, server: FakeBatchesServer) -> bool:
    """Whether each page request the server saw came through the proxy, to the list URL."""
    return len(proxy.targets) == len(server.page_requests) == PAGES and all(
        target.startswith(server.url + "/batches?") for target in proxy.targets
    )


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
async def test_owned_session_honours_http_proxy(
    server: FakeBatchesServer,
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    """HTTP_PROXY (or http_proxy) routes every page request of an owned session through it."""
    monkeypatch.setenv(variable, proxy.url)
    got = await list_all(server)
    assert ids(got) == served_ids(server)
    assert proxied_every_page(proxy, server), proxy.targets


async def test_no_proxy_bypasses_the_proxy(
    server: FakeBatchesServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_PROXY=127.0.0.1 sends requests straight to the server."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    got = await list_all(server)
    assert ids(got) == served_ids(server)
    assert proxy.targets == []
    assert len(server.page_requests) == PAGES


async def test_explicit_proxy_needs_no_environment(
    server: FakeBatchesServer, proxy: ForwardProxy
) -> None:
    """Client(proxy=...) routes every page request through that proxy."""
    got = await list_all(server, proxy=proxy.url)
    assert ids(got) == served_ids(server)
    assert proxied_every_page(proxy, server), proxy.targets


async def test_one_shot_listing_takes_a_proxy(
    server: FakeBatchesServer, proxy: ForwardProxy
) -> None:
    """aiobatches.list_batches(proxy=...) routes its pages through that proxy too."""
    stream = aiobatches.list_batches(
        api_key=API_KEY, base_url=server.url, proxy=proxy.url, limit=LIMIT
    )
    async with asyncio.timeout(30):  # hang guard: three local pages and a close are instant
        got = await stream.to_list()
    assert ids(got) == served_ids(server)
    assert proxied_every_page(proxy, server), proxy.targets


async def test_netrc_never_replaces_the_clients_credentials(
    server: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A ~/.netrc with a login for the server's host changes nothing: Bearer key, never Basic."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login u password p\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    got = await list_all(server)
    assert ids(got) == served_ids(server)
    authorizations = [request.headers.get("Authorization") for request in server.page_requests]
    assert authorizations == [f"Bearer {API_KEY}"] * PAGES


async def test_netrc_with_a_proxy_still_sends_the_key(
    server: FakeBatchesServer,
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Through an environment proxy, a netrc entry for the host still leaves the Bearer key."""
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login u password p\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    got = await list_all(server)
    assert ids(got) == served_ids(server)
    assert proxied_every_page(proxy, server), proxy.targets
    authorizations = [request.headers.get("Authorization") for request in server.page_requests]
    assert authorizations == [f"Bearer {API_KEY}"] * PAGES


async def test_proxy_variable_that_does_not_parse_is_ignored(
    server: FakeBatchesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HTTP_PROXY that is no URL at all is passed over: the listing goes straight there."""
    monkeypatch.setenv("HTTP_PROXY", "http://user:s3cr3t-pw@[proxy")
    got = await list_all(server)
    assert ids(got) == served_ids(server)
    assert len(server.page_requests) == PAGES
