"""The merge, exact on adversarial accounts: many batches per creation second in any order,
every page size, failures at any page, over real HTTP; resuming from `cursors` gives the
rest with no gap or repeat."""

from __future__ import annotations

import math
from typing import Any, Final

import attrs
import orjson
from _helpers import LoopbackServer, envelope
from _scripted import NOW, make_batch
from aiohttp import web
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import aiobatches

SOURCES: Final = ("prod", "evals", "claude", "azure")
FAILURES: Final = (400, 404, 429, 500, 503)
"""Statuses a source fails with: permanent ones, and transient ones a client with
`max_retries=0` does not retry."""


@attrs.define
class Account:
    """One source's batches (newest first, as the API lists them) and its one failure."""

    batches: list[dict[str, Any]]
    fail_at: int | None = None
    """The index of the list request answered with `status` (once); None: never."""
    status: int = 500
    lists: int = 0


class AccountsServer(LoopbackServer):
    """The list endpoint of several accounts, each chosen by the key a request carries."""

    def __init__(self, accounts: dict[str, Account]) -> None:
        self.accounts = accounts

    def client(self, source: str) -> aiobatches.Client:
        """A client of one account, retrying nothing (a transient failure is raised too)."""
        return aiobatches.Client(api_key=key(source), base_url=self.url, max_retries=0)

    async def _list(self, request: web.Request) -> web.Response:
        source = request.headers["Authorization"].removeprefix("Bearer sk-merge-")
        account = self.accounts[source]
        index, account.lists = account.lists, account.lists + 1
        if index == account.fail_at:
            account.fail_at = None
            error = {"message": "scripted", "type": "server_error", "param": None, "code": None}
            return web.json_response({"error": error}, status=account.status)
        limit = int(request.query.get("limit", "20"))
        after = request.query.get("after")
        ids = [batch["id"] for batch in account.batches]
        start = 0 if after is None else ids.index(after) + 1
        window = account.batches[start : start + limit]
        body = envelope(window, has_more=start + limit < len(ids))
        return web.Response(body=orjson.dumps(body), content_type="application/json")


def key(source: str) -> str:
    """The API key of a source's account."""
    return f"sk-merge-{source}"


@st.composite
def accounts(draw: st.DrawFn, limit: int) -> dict[str, Account]:
    """1..4 accounts whose batches share a few seconds (many ties, within and across
    accounts), listed newest first in any order within a second; some fail at one of the
    pages a listing of `limit` batches a page requests."""
    count = draw(st.integers(1, len(SOURCES)))
    names = draw(st.permutations(SOURCES))[:count]
    seconds = draw(st.integers(1, 6))
    drawn: dict[str, Account] = {}
    number = 0
    for name in names:
        ages = draw(st.lists(st.integers(0, seconds - 1), max_size=12))
        batches = []
        for age in sorted(ages):
            batches.append(make_batch(number, status="completed", created_at=NOW - age))
            number += 1
        # The API's order within one second is its own: shuffle each second's batches.
        listed: list[dict[str, Any]] = []
        for age in sorted(set(ages)):
            tied = [batch for batch in batches if batch["created_at"] == NOW - age]
            listed += draw(st.permutations(tied))
        account = Account(listed)
        pages = max(1, math.ceil(len(listed) / limit))
        fails = draw(st.sampled_from(("never", "first page", *["later page"] * 3, "never")))
        if fails == "first page":  # ends the merge before its first batch, or at a later read
            account.fail_at = 0
        elif fails == "later page" and pages > 1:
            account.fail_at = draw(st.integers(1, pages - 1))
            account.status = draw(st.sampled_from(FAILURES))
        drawn[name] = account
    return drawn


def sorted_union(drawn: dict[str, Account]) -> list[tuple[str, str]]:
    """Every batch as `(source, id)`: newest first, ties by the sources' order in the
    mapping, then by each source's own order."""
    keyed = [
        ((-batch["created_at"], place, own), (name, batch["id"]))
        for place, (name, account) in enumerate(drawn.items())
        for own, batch in enumerate(account.batches)
    ]
    return [item for _, item in sorted(keyed)]


def failure_point(
    drawn: dict[str, Account], union: list[tuple[str, str]], limit: int
) -> tuple[int, str] | None:
    """Where the merge must fail: how many batches come before the error, and its source."""
    points = []
    for name, account in drawn.items():
        pages = max(1, math.ceil(len(account.batches) / limit))
        if account.fail_at is None or account.fail_at >= pages:
            continue  # the failing request is never made
        read = account.fail_at * limit  # the source's batches before the failing page
        before = 0 if read == 0 else union.index((name, account.batches[read - 1]["id"])) + 1
        points.append((before, list(drawn).index(name), name))
    if not points:
        return None
    before, _, name = min(points)
    return before, name


async def run_merge(
    server: AccountsServer, after: dict[str, str | None], limit: int, prefetch: int, stop: int
) -> tuple[list[tuple[str, str]], BaseException | None, dict[str, str | None]]:
    """Merge every source from `after`, breaking out after `stop` batches; what it handed
    out, the error it raised (if any) and its cursors."""
    clients = {name: server.client(name) for name in after}
    out: list[tuple[str, str]] = []
    raised: BaseException | None = None
    try:
        streams = {
            name: client.list_batches(limit=limit, after=after[name], prefetch=prefetch)
            for name, client in clients.items()
        }
        async with aiobatches.merge(streams) as merged:
            try:
                async for source, batch in merged:
                    out.append((source, batch.id))
                    if len(out) == stop:
                        break
            except aiobatches.APIError as error:
                raised = error
            if raised is not None:  # an error closes every source at once
                assert all(stream.closed for stream in streams.values())
        assert all(stream.closed for stream in streams.values())
        cursors = merged.cursors
    finally:
        for client in clients.values():
            await client.aclose()
    return out, raised, cursors


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data(), limit=st.sampled_from([1, 2, 3, 100]), prefetch=st.integers(0, 2))
async def test_the_merge_is_the_sorted_union_and_resumes_exactly(
    data: st.DataObject, limit: int, prefetch: int
) -> None:
    """Up to a source's error (or a break), the merge hands out the sorted union of the
    sources; resuming each source after `cursors` hands out exactly the rest."""
    drawn = data.draw(accounts(limit), label="accounts")
    union = sorted_union(drawn)
    everything = st.just(len(union) + 1)
    stop = data.draw(everything | st.integers(1, len(union) + 1), label="stop")
    failure = failure_point(drawn, union, limit)
    note(f"union: {union}\nfailure: {failure}")
    async with AccountsServer(drawn) as server:
        start: dict[str, str | None] = dict.fromkeys(drawn)
        out, raised, cursors = await run_merge(server, start, limit, prefetch, stop)
        if failure is not None and failure[0] < stop:
            before, source = failure
            event("a source failed" if before else "a source failed at its first page")
            assert out == union[:before]
            assert isinstance(raised, aiobatches.APIError)
            assert raised.source == source
            cut = before
        else:
            assert raised is None
            cut = min(stop, len(union))
            event("broke out" if cut < len(union) else "listed everything")
            assert out == union[:cut]
        for name in drawn:
            handed = [batch_id for source, batch_id in out if source == name]
            assert cursors[name] == (handed[-1] if handed else None)
        for account in drawn.values():
            account.fail_at = None  # resuming meets no failure
        rest, raised, _ = await run_merge(server, cursors, limit, prefetch, len(union))
        assert raised is None
        assert rest == union[cut:]
