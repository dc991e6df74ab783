"""Exact across a restart: a checkpoint taken anywhere (mid-look, mid-page, at a rest),
changes while nothing watches, a resumed watch; the events before the checkpoint and
after it fold into the server's state, none twice, on accounts drawn as real OpenAI and
Anthropic ones look."""

from __future__ import annotations

import json
import random
from typing import Any, Final

import pytest
from _account import FAULTS, SHAPES, Account, AccountServer, AnyBatch, Api, resting_with, status_of
from hypothesis import given, note, settings
from hypothesis import strategies as st
from test_watch_exact import EXACT, draw_account

import aiobatches

RESTARTS: Final = 1000
ANTHROPIC_RESTARTS: Final = 500
"""Half as many from Anthropic, as for the timelines (`test_watch_exact`)."""
TRANSIENT: Final = tuple(fault for fault in FAULTS if fault.transient)


class StopWatchingError(Exception):
    """Raised from a rest to stop a watch."""


class Fold:
    """The batches as the events so far say they are; refuses an event that repeats one
    or skips a change."""

    def __init__(self) -> None:
        self.batches: dict[str, AnyBatch] = {}

    def take(self, event: aiobatches.BatchEvent[Any]) -> None:
        batch_id = event.batch.id
        note(f"event {event.kind} {batch_id} {status_of(event.batch)}")
        if event.kind == "updated":
            assert batch_id in self.batches, f"{batch_id} updated before it was reported"
            assert event.previous == self.batches[batch_id], f"{batch_id}: a change missed"
            assert event.batch != event.previous, f"{batch_id}: an update with no change"
        else:
            assert batch_id not in self.batches, f"{batch_id} reported as new twice"
        self.batches[batch_id] = event.batch


def change(account: Account, rng: random.Random, reported: set[str]) -> None:
    """What may happen between two looks: progress, finishes, batches new in the newest
    moment or later, ties listed in a new order, and reported batches the listing stops
    showing (still retrievable) or shows again."""
    for batch_id in sorted(account.batches):
        roll = rng.random()
        if roll < 0.3:
            account.progress(batch_id, rng.randrange(8))
        elif roll < 0.4:
            account.finish(batch_id)
        elif roll < 0.45 and batch_id in reported:
            account.hidden.symmetric_difference_update({batch_id})
    for _ in range(rng.choice((0, 0, 1, 3))):
        later = 0 if rng.random() < 0.5 else rng.randint(1, 2)
        status = rng.choice(("validating", "in_progress", "completed", "failed"))
        rank = rng.random()
        spread = rng.random() if account.api == "anthropic" else 0.0
        created = account.create_later(later, status, rank, spread)
        note(f"  created {created} at {account.moment(created)}")
    account.shuffle_ties(rng.randrange(1 << 16))


def fail_some(server: AccountServer, rng: random.Random) -> None:
    """The next look's requests as real servers answer: now and then one fails, as the
    retry policy calls transient (503, a dropped connection, 429 with Retry-After)."""
    chance = rng.random() < 0.3
    server.next_attempt(faults={rng.randrange(4): rng.choice(TRANSIENT)} if chance else None)


@settings(EXACT, max_examples=RESTARTS)
@given(data=st.data())
async def test_a_restart_anywhere_misses_nothing_and_repeats_nothing(data: st.DataObject) -> None:
    """Events before a checkpoint taken at a random point plus a resumed watch's events
    fold into the server's state, none twice, whatever fails or hides on the way."""
    await check_restart(data, "openai")


@settings(EXACT, max_examples=ANTHROPIC_RESTARTS)
@given(data=st.data())
async def test_an_anthropic_restart_anywhere_misses_nothing_and_repeats_nothing(
    data: st.DataObject,
) -> None:
    """Likewise from Anthropic, whose checkpoints hold moments to the microsecond."""
    await check_restart(data, "anthropic")


async def check_restart(data: st.DataObject, api: Api) -> None:
    """Watch an account of `api` to a checkpoint taken at a drawn point, change it while
    nothing watches, resume, and fold every event into the account's state."""
    rng = data.draw(st.randoms(use_true_random=False), label="rng")
    account = draw_account(data, rng, api)
    account.hidden.clear()  # only batches already reported are hidden: see `change`
    limit = data.draw(st.sampled_from([1, 2, 3, SHAPES[api].max_limit]), label="limit")
    told = data.draw(st.integers(0, 25), label="events before the checkpoint")
    rests_before = data.draw(st.integers(0, 3), label="rests before the checkpoint")
    rests_after = data.draw(st.integers(0, 2), label="rests with changes after resuming")
    fold = Fold()
    state: dict[str, Any] = {}
    async with AccountServer(account) as server:
        watch: aiobatches.BatchWatch[Any] | None = None
        rests = 0

        async def before(_: float) -> None:
            nonlocal rests, state
            rests += 1
            if rests > rests_before:
                assert watch is not None
                state = watch.checkpoint()  # at a rest: every event is out
                raise StopWatchingError
            change(account, rng, set(fold.batches))
            fail_some(server, rng)

        with resting_with(before), pytest.raises(StopWatchingError):
            async with server.client() as client:
                watch = client.watch_batches(limit=limit)
                async with watch:
                    async for event in watch:
                        fold.take(event)
                        told -= 1
                        if told < 0:
                            state = watch.checkpoint()
                            raise StopWatchingError
        note(f"checkpoint: {state}")
        if rng.random() < 0.7:
            note("while down:")
            change(account, rng, set(fold.batches))
        fail_some(server, rng)
        resumed = json.loads(json.dumps(state))
        rests = 0

        async def after(_: float) -> None:
            nonlocal rests
            rests += 1
            if rests <= rests_after:
                change(account, rng, set(fold.batches))
                fail_some(server, rng)
            elif rests == rests_after + 1:
                server.next_attempt()  # a whole cycle, with no failure, sees the last change
            else:
                raise StopWatchingError

        with resting_with(after), pytest.raises(StopWatchingError):
            async with server.client() as client, client.watch_batches(resume=resumed) as again:
                async for event in again:
                    fold.take(event)
    for batch_id in account.batches:
        if batch_id in account.hidden and batch_id not in fold.batches:
            continue  # hidden before any look showed it: no watch can know of it
        assert batch_id in fold.batches, f"{batch_id} was never reported"
        assert fold.batches[batch_id] == account.model(batch_id), f"{batch_id} is stale"
