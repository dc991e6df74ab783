"""`AnthropicClient`: Message Batches listed, retrieved, waited for and watched through the
one engine, over real HTTP against the fake server's Anthropic shapes (and hand-written
pages where a real server's variations matter)."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any, Final

import pytest
from _helpers import API_KEY, MakeServer
from aiohttp import web

import aiobatches
from aiobatches.testing import FakeBatchesServer, Fault, ManualClock, recorded_sleeps

RESULTS_URL: Final = (
    "https://api.anthropic.com/v1/messages/batches/msgbatch_013Zva2CMHLNnXjNJJKqJ2EF/results"
)
MESSAGE_BATCH: Final[dict[str, Any]] = {
    # The API reference's example, as it is (every nullable field filled at once).
    "id": "msgbatch_013Zva2CMHLNnXjNJJKqJ2EF",
    "archived_at": "2024-08-20T18:37:24.100435Z",
    "cancel_initiated_at": "2024-08-20T18:37:24.100435Z",
    "created_at": "2024-08-20T18:37:24.100435Z",
    "ended_at": "2024-08-20T18:37:24.100435Z",
    "expires_at": "2024-08-20T18:37:24.100435Z",
    "processing_status": "in_progress",
    "request_counts": {
        "canceled": 10,
        "errored": 30,
        "expired": 10,
        "processing": 100,
        "succeeded": 50,
    },
    "results_url": RESULTS_URL,
    "type": "message_batch",
}


def client_of(server: FakeBatchesServer, **kwargs: Any) -> aiobatches.AnthropicClient:
    kwargs.setdefault("api_key", API_KEY)
    return aiobatches.AnthropicClient(base_url=server.anthropic_url, **kwargs)


@pytest.fixture
async def server(make_server: MakeServer) -> FakeBatchesServer:
    return await make_server(count=120, api_key=API_KEY)


async def test_lists_every_message_batch_newest_first_by_after_id(
    server: FakeBatchesServer,
) -> None:
    """Pages of `limit` continue with `after_id` (never `after`), with the key as
    `x-api-key` and `anthropic-version`, every batch once, newest first to the microsecond."""
    async with client_of(server) as client:
        got = await client.list_batches(limit=50).to_list()
    assert len(got) == len({batch.id for batch in got}) == 120
    assert all(isinstance(batch, aiobatches.MessageBatch) for batch in got)
    created = [batch.created_at for batch in got]
    assert created == sorted(created, reverse=True)
    assert all(moment.tzinfo is not None for moment in created)
    pages = [r for r in server.requests if r.path == "/v1/messages/batches"]
    assert [r.query.get("after_id") for r in pages] == [None, got[49].id, got[99].id]
    assert all("after" not in r.query and r.query["limit"] == "50" for r in pages)
    for request in pages:
        assert request.headers["x-api-key"] == API_KEY
        assert request.headers["anthropic-version"] == "2023-06-01"
        assert "Authorization" not in request.headers


async def test_retrieve_wait_and_pages_hold_message_batches(server: FakeBatchesServer) -> None:
    async with client_of(server) as client:
        stream = client.list_batches(limit=1000, max_items=30)
        pages = [page async for page in stream.pages()]
        assert [len(page.data) for page in pages] == [30]
        ended = next(b for b in pages[0].data if b.is_finished)
        assert ended.processing_status is aiobatches.MessageBatchStatus.ENDED
        assert await client.retrieve_batch(ended.id) == ended
        assert await client.wait_for_batches([ended.id]) == [ended]
        with pytest.raises(aiobatches.NotFoundError) as missing:
            await client.retrieve_batch("msgbatch_nope")
    assert missing.value.type == "not_found_error"
    assert missing.value.request_id is not None


@pytest.mark.parametrize("limit", [0, 1001])
def test_limit_is_1_to_1000(limit: int) -> None:
    client = aiobatches.AnthropicClient(api_key=API_KEY)
    with pytest.raises(ValueError, match="limit"):
        client.list_batches(limit=limit)


def test_limit_of_1000_is_taken() -> None:
    stream = aiobatches.AnthropicClient(api_key=API_KEY).list_batches(limit=1000)
    assert isinstance(stream, aiobatches.BatchStream)


async def test_a_watch_follows_and_resumes_message_batches(make_server: MakeServer) -> None:
    """A watch of a living server reports an ended batch as finished; its checkpoint names
    Anthropic, resumes on an AnthropicClient with no flood, and is refused by an OpenAI
    client (and the other way round) before any request."""
    clock = ManualClock()
    server = await make_server(count=40, api_key=API_KEY, clock=clock)
    async with client_of(server) as client:
        async with client.watch_batches(poll_interval=60) as watch:
            first = [await anext(watch) for _ in range(40)]
            assert {event.kind for event in first} == {"existing"}
            state = watch.checkpoint()
        assert state["api"] == "Anthropic"
        unfinished = [e.batch for e in first if not e.batch.is_finished]
        assert len(state["batches"]) == len(unfinished) > 0
        clock.advance(24 * 3600)  # every batch ends within its window
        resumed = json.loads(json.dumps(state))
        async with client.watch_batches(poll_interval=60, resume=resumed) as again:
            told = [await anext(again) for _ in range(len(unfinished))]
        assert {e.kind for e in told} == {"updated"}
        assert all(e.finished and e.previous is not None for e in told)
        assert {e.batch.id for e in told} == {b.id for b in unfinished}
    requests = len(server.requests)
    async with aiobatches.Client(api_key=API_KEY, base_url=server.url) as openai:
        with pytest.raises(ValueError, match="Anthropic"):
            openai.watch_batches(resume=resumed)
        async with openai.watch_batches() as watch:
            await anext(watch)
            openai_state = watch.checkpoint()
    with pytest.raises(ValueError, match="OpenAI"):
        aiobatches.AnthropicClient(api_key=API_KEY).watch_batches(resume=openai_state)
    assert len(server.requests) == requests + 1  # the OpenAI watch's own first page only


async def test_overloaded_529_is_retried(make_server: MakeServer) -> None:
    """Anthropic's 529 (overloaded) is retried as any 5xx is, after its `retry-after`."""
    server = await make_server(
        count=5, api_key=API_KEY, faults={0: Fault.respond(529, {"retry-after": "2"})}
    )
    with recorded_sleeps() as sleeps:
        async with client_of(server) as client:
            assert len(await client.list_batches().to_list()) == 5
    assert sleeps == [2.0]


def test_the_key_and_base_url_fall_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "https://gateway.example/anthropic")
    client = aiobatches.AnthropicClient()
    assert repr(client) == (
        "<AnthropicClient https://gateway.example/anthropic/v1/messages/batches unopened>"
    )
    monkeypatch.delenv("ANTHROPIC_BASE_URL")
    assert "https://api.anthropic.com/v1/messages/batches" in repr(aiobatches.AnthropicClient())
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(aiobatches.AIOBatchesError, match="ANTHROPIC_API_KEY"):
        aiobatches.AnthropicClient()


@pytest.mark.parametrize("setting", ["organization", "project", "timout"])
def test_settings_of_openai_only_or_misspelt_are_refused(setting: str) -> None:
    with pytest.raises(TypeError, match=setting):
        aiobatches.AnthropicClient(api_key=API_KEY, **{setting: "x"})  # type: ignore[arg-type]


class _Pages:
    """An Anthropic-shaped server of hand-written items: one page, as given."""

    def __init__(self, items: list[Any], **headers: str) -> None:
        self.items = items
        self.headers: list[dict[str, str]] = []
        self._extra = headers

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_get("/v1/messages/batches", self._list)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _list(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        ids = [item["id"] for item in self.items]
        body = {"data": self.items, "has_more": False, "first_id": ids[0], "last_id": ids[-1]}
        return web.json_response(body, headers=self._extra)


def item(**changes: Any) -> dict[str, Any]:
    return {**MESSAGE_BATCH, **changes}


@pytest.mark.parametrize(
    ("written", "moment"),
    [
        ("2024-08-20t18:37:24z", datetime.datetime(2024, 8, 20, 18, 37, 24, tzinfo=datetime.UTC)),
        (
            "2024-08-20 18:37:24.5-03:30",
            datetime.datetime(2024, 8, 20, 22, 7, 24, 500000, tzinfo=datetime.UTC),
        ),
        (  # a leap second: the last microsecond of the second before
            "2016-12-31T23:59:60Z",
            datetime.datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.UTC),
        ),
        (
            "1969-12-31T23:59:59.25Z",
            datetime.datetime(1969, 12, 31, 23, 59, 59, 250000, tzinfo=datetime.UTC),
        ),
    ],
)
async def test_every_rfc3339_form_is_read_and_a_watch_resumes_from_it(
    written: str, moment: datetime.datetime
) -> None:
    """Lowercase `t` and `z`, a space, an offset, a leap second, a time before 1970: read
    as the moment written, and a watch's checkpoint of such a batch survives JSON and
    resumes with no event."""
    items = [item(id="msgbatch_a", created_at=written, processing_status="in_progress")]
    async with _Pages(items) as url, aiobatches.AnthropicClient(api_key="k", base_url=url) as c:
        async with c.watch_batches(poll_interval=60) as watch:
            event = await anext(watch)
            state = json.loads(json.dumps(watch.checkpoint()))
        assert event.batch.created_at == moment
        async with c.watch_batches(poll_interval=60, resume=state) as again:
            with pytest.raises(TimeoutError):  # its first cycle ends in a rest, with no event
                async with asyncio.timeout(0.5):
                    await anext(again)
            assert again.checkpoint()["batches"] == state["batches"]


async def test_rfc3339_times_with_offsets_and_any_fraction_are_read_exactly() -> None:
    """`Z`, an offset, no fraction, a nanosecond fraction (read to the microsecond): aware
    datetimes at the moment written; nulls and absent nullable keys are None."""
    items = [
        item(id="msgbatch_a", created_at="2024-08-20T18:37:24.100435Z"),
        item(id="msgbatch_b", created_at="2024-08-20T20:37:24.1+02:00"),
        item(id="msgbatch_c", created_at="2024-08-20T18:37:24Z", ended_at=None),
        item(id="msgbatch_d", created_at="2024-08-20T18:37:23.999999999Z", archived_at=None),
    ]
    del items[3]["results_url"]
    async with _Pages(items) as url, aiobatches.AnthropicClient(api_key="k", base_url=url) as c:
        got = await c.list_batches().to_list()
    utc = datetime.UTC
    assert [b.created_at for b in got] == [
        datetime.datetime(2024, 8, 20, 18, 37, 24, 100435, tzinfo=utc),
        datetime.datetime(2024, 8, 20, 18, 37, 24, 100000, tzinfo=utc),
        datetime.datetime(2024, 8, 20, 18, 37, 24, tzinfo=utc),
        datetime.datetime(2024, 8, 20, 18, 37, 23, 999999, tzinfo=utc),
    ]
    assert got[0] == aiobatches.MessageBatch(
        id="msgbatch_a",
        type="message_batch",
        processing_status=aiobatches.MessageBatchStatus.IN_PROGRESS,
        request_counts=aiobatches.MessageBatchRequestCounts(100, 50, 30, 10, 10),
        created_at=got[0].created_at,
        expires_at=datetime.datetime(2024, 8, 20, 18, 37, 24, 100435, tzinfo=utc),
        ended_at=datetime.datetime(2024, 8, 20, 18, 37, 24, 100435, tzinfo=utc),
        cancel_initiated_at=datetime.datetime(2024, 8, 20, 18, 37, 24, 100435, tzinfo=utc),
        archived_at=datetime.datetime(2024, 8, 20, 18, 37, 24, 100435, tzinfo=utc),
        results_url=RESULTS_URL,
    )
    assert got[2].ended_at is None
    assert (got[3].archived_at, got[3].results_url) == (None, None)


@pytest.mark.parametrize(
    "created_at",
    [
        "2024-08-20T18:37:24",  # no zone
        "2024-08-20",  # a date alone
        1724179044,  # Unix seconds
        "yesterday",
        "2024-08-20T18:37:24Z" + "0" * 60,
        "2024-08-20T18:37:24+0000",  # ISO 8601's offset without a colon: not RFC 3339
        "2024-08-20T18:37+00:00",  # no seconds
        "2024-W34-2T18:37:24Z",  # a week date
        "2024-08-20T18:37:24,5Z",  # a comma before the fraction
        "2024-08-20T18:37:24.Z",  # an empty fraction
        "2024-08-20T18:37:25+00:00:30",  # an offset with seconds
        "2024-02-30T00:00:00Z",  # no such day
        "\uff12\uff10\uff12\uff14-08-20T18:37:24Z",  # digits of another script
    ],
)
async def test_a_time_that_is_not_rfc3339_with_a_zone_names_the_field_and_the_batch(
    created_at: object,
) -> None:
    """A naive time, a date alone, Unix seconds, words, a very long string: the batch is
    malformed, named with its field, and the batches around it are kept when skipped."""
    items = [
        item(id="msgbatch_a"),
        item(id="msgbatch_bad", created_at=created_at),
        item(id="msgbatch_c"),
    ]
    async with _Pages(items) as url, aiobatches.AnthropicClient(api_key="k", base_url=url) as c:
        with pytest.raises(aiobatches.APIResponseValidationError) as bad:
            await c.list_batches().to_list()
        assert bad.value.batch_id == "msgbatch_bad"
        assert "created_at" in str(bad.value)
        skipping = c.list_batches(on_invalid="skip")
        assert [b.id for b in await skipping.to_list()] == ["msgbatch_a", "msgbatch_c"]
        assert skipping.skipped == ["msgbatch_bad"]


async def test_a_later_status_arrives_as_a_plain_str_and_counts_as_unfinished() -> None:
    pages = _Pages([item(processing_status="archiving")])
    async with pages as url, aiobatches.AnthropicClient(api_key="k", base_url=url) as c:
        (got,) = await c.list_batches().to_list()
    assert got.processing_status == "archiving"
    assert type(got.processing_status) is str
    assert not got.is_finished


async def test_a_later_anthropic_version_replaces_the_default() -> None:
    pages = _Pages([item()])
    async with pages as url:
        headers = {"Anthropic-Version": "2026-10-21", "anthropic-beta": "x"}
        async with aiobatches.AnthropicClient(
            api_key="k", base_url=url, default_headers=headers
        ) as c:
            await c.list_batches().to_list()
    (sent,) = pages.headers
    versions = [value for name, value in sent.items() if name.lower() == "anthropic-version"]
    assert versions == ["2026-10-21"]
    assert sent["anthropic-beta"] == "x"
