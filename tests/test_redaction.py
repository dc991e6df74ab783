"""A credential that a server or proxy echoes back in the `x-request-id` header reaches no
log record, no error and no terminal: the request id is redacted where it is read, for a
listing and a retrieval alike, whether the header is the credential or merely holds it."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Final

import pytest
from _helpers import RunCli
from aiohttp import web

import aiobatches

KEY: Final = "sk-proj-echoed-0123456789abcdefXYZ"
MISSING: Final = "batch_missing"
ECHOES: Final[dict[str, Callable[[str], str]]] = {
    "whole": lambda secret: secret,
    "inside": lambda secret: f"req_7f3a{secret}-edge",
}
"""How a server echoes the credential it was sent into its request id."""
ANSWERS: Final = ("status", "invalid")
"""A 401 (an APIStatusError) or a 200 that is not JSON (an APIResponseValidationError)."""


class EchoServer:
    """A real server on 127.0.0.1 that answers every request with `answer` and a request id
    made by `echo` from the credential the request carried (Bearer token or `api-key`)."""

    def __init__(self) -> None:
        self.echo: Callable[[str], str] = ECHOES["whole"]
        self.answer = "status"
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/v1"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.path.endswith("/batches"):
            if self.answer == "empty":  # a wait's listing, before it retrieves what it lacks
                empty = {"object": "list", "data": [], "has_more": False}
                return web.json_response(empty, headers=self._echoed(request))
            status = 401
        else:
            status = 404
        if self.answer == "invalid":
            return web.Response(
                text="<html>oops</html>", content_type="text/html", headers=self._echoed(request)
            )
        error = {"message": "denied", "type": "invalid_request_error", "param": None, "code": None}
        return web.json_response({"error": error}, status=status, headers=self._echoed(request))

    def _echoed(self, request: web.Request) -> dict[str, str]:
        sent = request.headers.get("api-key") or request.headers["Authorization"]
        return {"x-request-id": self.echo(sent.removeprefix("Bearer "))}


@pytest.fixture
async def echoing() -> AsyncIterator[EchoServer]:
    """An EchoServer, closed at teardown."""
    server = EchoServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def fail(client: aiobatches.Client, what: str) -> aiobatches.APIError:
    """The error of listing, or of retrieving a batch, from `client`."""
    with pytest.raises(aiobatches.APIError) as caught:
        if what == "list":
            await client.list_batches().to_list()
        else:
            await client.retrieve_batch(MISSING)
    return caught.value


def leaks(records: list[logging.LogRecord], secrets: list[str]) -> list[str]:
    """The messages of records in which any of `secrets` appears, attributes included."""
    return [
        record.getMessage()
        for record in records
        for secret in secrets
        if secret in record.getMessage() or secret in str(vars(record))
    ]


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("echo", ECHOES)
@pytest.mark.parametrize("what", ["list", "retrieve"])
async def test_echoed_key_is_masked_in_the_log_and_the_error(
    echoing: EchoServer, caplog: pytest.LogCaptureFixture, what: str, echo: str, answer: str
) -> None:
    """The key echoed in x-request-id shows as *** in the DEBUG record and `error.request_id`."""
    echoing.echo, echoing.answer = ECHOES[echo], answer
    caplog.set_level(logging.DEBUG, logger="aiobatches")
    async with aiobatches.Client(api_key=KEY, base_url=echoing.url, max_retries=0) as client:
        error = await fail(client, what)
    masked = ECHOES[echo]("***")
    expected = (
        aiobatches.APIStatusError if answer == "status" else aiobatches.APIResponseValidationError
    )
    assert isinstance(error, expected)
    assert getattr(error, "request_id", None) == masked
    assert KEY not in str(error)
    assert KEY not in repr(vars(error))
    [record] = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert getattr(record, "request_id", None) == masked
    assert f"request_id={masked}" in record.getMessage()
    assert leaks(caplog.records, [KEY]) == []


@pytest.mark.parametrize("echo", ECHOES)
@pytest.mark.parametrize("what", ["list", "retrieve"])
async def test_fresh_azure_tokens_echoed_are_masked(
    echoing: EchoServer, caplog: pytest.LogCaptureFixture, what: str, echo: str
) -> None:
    """A provider's fresh token per request, echoed back, is masked like a key."""
    echoing.echo = ECHOES[echo]
    numbers = itertools.count()
    issued: list[str] = []

    def provider() -> str:
        issued.append(f"eyJ0eXAiOiJKV1QiLCJhbGciOi.fresh-{next(numbers):04d}")
        return issued[-1]

    caplog.set_level(logging.DEBUG, logger="aiobatches")
    async with aiobatches.AzureClient(
        azure_endpoint=echoing.url.removesuffix("/v1"),
        azure_ad_token_provider=provider,
        max_retries=0,
    ) as client:
        first = await fail(client, what)
        second = await fail(client, what)
    assert len(issued) == 2
    masked = ECHOES[echo]("***")
    assert [getattr(first, "request_id", None), getattr(second, "request_id", None)] == [
        masked,
        masked,
    ]
    assert leaks(caplog.records, issued) == []


@pytest.mark.parametrize("echo", ECHOES)
@pytest.mark.parametrize("command", ["list", "wait"])
async def test_echoed_key_is_masked_on_the_command_line(
    echoing: EchoServer, cli: RunCli, command: str, echo: str
) -> None:
    """`list` (a listing) and `wait ID` (a retrieval) say `request id ***`, never the key."""
    echoing.echo = ECHOES[echo]
    echoing.answer = "status" if command == "list" else "empty"
    ids = [] if command == "list" else [MISSING]
    code, out, err = await cli(command, *ids, "--base-url", echoing.url, "--api-key", KEY)
    assert (code, out) == (1, "")
    expected = 401 if command == "list" else 404
    assert f"status {expected}; request id {ECHOES[echo]('***')}" in err
    assert KEY not in err
