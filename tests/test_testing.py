"""The shipped fake server itself: its endpoint's rules, its faults, and a prompt close."""

from __future__ import annotations

import asyncio

import pytest
from _helpers import API_KEY, MakeServer, eventually

import aiobatches
from aiobatches.testing import Fault


async def test_close_cancels_an_answer_stalled_for_30_s(make_server: MakeServer) -> None:
    """Closing while an answer stalls for 30 s cancels it: the client sees its connection drop
    instead of the page, and nothing is left running."""
    server = await make_server(count=5, faults={0: Fault.stall(30)})
    async with aiobatches.Client(
        api_key=API_KEY, base_url=server.url, max_retries=0, timeout=60
    ) as client:
        listing = asyncio.create_task(client.list_batches().to_list())
        assert await eventually(lambda: bool(server.page_requests))
        async with asyncio.timeout(20):  # hang guard: an answer not cancelled takes 30 s
            await server.close()
            with pytest.raises(aiobatches.APIConnectionError) as caught:
                await listing
    assert not isinstance(caught.value, aiobatches.APITimeoutError)
    assert asyncio.all_tasks() == {asyncio.current_task()}
