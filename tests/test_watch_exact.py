"""The watch, exact on adversarial accounts of OpenAI and Anthropic: ties within a second
(OpenAI) or a microsecond (Anthropic, whose seconds hold many microseconds) in any order,
progress, new batches among the newest ties, batches that vanish and come back, pages
that shift mid-cycle, and transient and permanent failures at every step, over real HTTP."""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import random
from collections.abc import Callable
from typing import Any, Final

import attrs
import pytest
from _account import (
    FAULTS,
    MICRO,
    NOW,
    SHAPES,
    STATUSES,
    Account,
    AccountServer,
    AnyBatch,
    Api,
    Served,
    resting_with,
    status_of,
    warnings_logged,
)
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

import aiobatches

MAX_HINT: Final = 120.0
"""The longest pause a server's hint can ask of a watch (API.md: capped at 120 s)."""
DRAWN_FAULTS: Final = FAULTS + tuple(f for f in FAULTS if f.transient)
"""Transient faults twice as likely as permanent ones, which end a timeline."""


New = tuple[int, str, float, float]
"""A batch to create, as `Account.create_later` takes it: later, status, rank, spread."""


class StopWatchingError(Exception):
    """Ends a watch from inside its rest, once the timeline has run its cycles."""


@attrs.frozen
class Settings:
    """One watch's arguments, as drawn."""

    limit: int
    interval: float
    since: float | None
    """`since` as Unix seconds; the watch is given it as `since_arg`."""
    since_arg: float | datetime.datetime | None
    ids: tuple[str, ...] | None
    until_finished: bool
    cycles: int
    """How many cycles the timeline lets succeed before it stops (or winds down)."""


class Timeline:
    """One drawn timeline: the account, the watch, and the test's model of what the
    watch must have reported; checks every event as it comes and everything at each rest.

    An *attempt* is one try of a cycle: it starts when the watch's rest ends (or the watch
    starts) and ends at the next rest or at the watch's end. The account changes only
    between attempts, except for batches inserted between two pages of one listing.
    """

    def __init__(self, server: AccountServer, options: Settings, rng: random.Random) -> None:
        self.server = server
        self.account = server.account
        self.options = options
        self.rng = rng
        self.watch: aiobatches.BatchWatch[Any] | None = None
        self.warnings: list[logging.LogRecord] = []
        self.folded: dict[str, AnyBatch] = {}
        """Each batch as the events so far say it is."""
        self.dropped: set[str] = set()
        """Batches the watch had to drop (gone with a 404): no longer followed."""
        self.must: set[str] = set()
        """Batches the watch must have reported by now."""
        self.horizon: int | None = None
        """The current cycle's horizon, a creation second: with `since`, it lists every batch
        created in it or later (see `above`)."""
        self.first_done = False
        self.cycles = 0
        self.rests = 0
        self.winding_down = False
        self.warned_since_cycle = 0
        self.inserted: set[str] = set()
        self.listed_at_start: set[str] = set()
        self.unfinished_at_start: set[str] = set()
        self.retrieve_budget = 0
        self.must_drop: set[str] = set()
        self.must_not_find = False
        self.warned_at_start = 0

    # What the watch is asked to follow.

    def followed(self, batch_id: str) -> bool:
        """Created at or after `since`, among `ids` if given, and not dropped."""
        since, ids = self.options.since, self.options.ids
        if since is not None and self.account.moment(batch_id) < since:
            return False
        return (ids is None or batch_id in ids) and batch_id not in self.dropped

    def unfinished(self) -> set[str]:
        """The batches the events say are unfinished."""
        return {i for i, batch in self.folded.items() if not batch.is_finished}

    # Attempts.

    def start_attempt(self) -> None:
        """Note what the account lists as an attempt begins, and what it may cost."""
        account, ids = self.account, self.options.ids
        self.listed_at_start = set(account.listed())
        self.unfinished_at_start = self.unfinished()
        self.inserted = set()
        self.warned_at_start = len(self.warnings)
        listed = {i for i in self.listed_at_start if self.above(i)}
        # One retrieval per followed unfinished batch the listing cannot show above the
        # horizon; on the first look, also per named id it cannot show.
        missing = self.unfinished_at_start - listed
        if not self.first_done and ids is not None:
            missing |= set(ids) - listed - self.folded.keys()
        self.retrieve_budget = len(missing)
        self.must_drop = {
            i for i in self.unfinished_at_start if not account.exists(i) and not self.named(i)
        }
        self.must_not_find = any(self.named(i) and not account.exists(i) for i in missing)

    def named(self, batch_id: str | None) -> bool:
        """Whether `ids` names the batch."""
        return self.options.ids is not None and batch_id in self.options.ids

    def permanent(self, served: Served) -> bool:
        """Whether an answer must end the watch: a permanent fault, or a 404 for a named id."""
        if served.fault is not None:
            return not served.fault.transient
        return served.kind == "retrieve" and served.status == 404 and self.named(served.target)

    def draw_new(self) -> New:
        """A batch to create: how much later than the newest moment (0: in it, anywhere
        among its ties), its status, its place among its ties, and where in the time after
        the newest one it lands (Anthropic's only: see `Account.create_later`)."""
        later = 0 if self.rng.random() < 0.5 else self.rng.randint(1, 2)
        status = self.rng.choice(("validating", "validating", *STATUSES))
        rank = self.rng.random()
        spread = self.rng.random() if self.account.api == "anthropic" else 0.0
        return later, status, rank, spread

    def create(self, new: New) -> str:
        """Create a batch drawn by `draw_new`, now."""
        batch_id = self.account.create_later(*new)
        created, status, rank = self.account.moment_us(batch_id), new[1], new[2]
        note(f"  created {batch_id} at {created / MICRO:.6f} ({status}, rank {rank:.2f})")
        return batch_id

    def inserter(self, news: list[New]) -> Callable[[], None]:
        """New batches among the newest ties or later, made between two pages of a listing."""

        def insert() -> None:
            note("  between two pages:")
            self.inserted.update(self.create(new) for new in news)

        return insert

    # Events.

    def see(self, event: aiobatches.BatchEvent[Any]) -> None:
        """Check one event against the account and the events before it, and fold it in."""
        batch, batch_id = event.batch, event.batch.id
        note(f"event {event.kind} {batch_id} {status_of(batch)} finished={event.finished}")
        assert batch_id in self.account.batches, f"an event for a batch never made: {batch_id}"
        assert self.followed(batch_id), f"an event for {batch_id}, which is not followed"
        assert batch == self.account.model(batch_id), f"{batch_id} is not as the server has it"
        if event.kind == "updated":
            self.see_update(event)
        else:
            expected = "existing" if not self.first_done else "created"
            assert event.kind == expected, f"{batch_id}: {event.kind}, expected {expected}"
            assert batch_id not in self.folded, f"{batch_id} reported as new twice"
            assert event.previous is None
            assert event.changes == ()
            finished = event.kind == "created" and batch.is_finished
            assert event.finished == finished, f"{event.kind} {batch_id}: finished wrong"
        self.folded[batch_id] = batch

    def see_update(self, event: aiobatches.BatchEvent[Any]) -> None:
        """An update reports a change since the last report of that batch, exactly."""
        batch, previous = event.batch, event.previous
        assert batch.id in self.folded, f"an update of {batch.id}, never reported before"
        assert previous == self.folded[batch.id], f"{batch.id}: previous is not the last report"
        assert batch != previous, f"an update of {batch.id}, which did not change"
        differing = {
            name
            for name in attrs.fields_dict(type(batch))
            if getattr(batch, name) != getattr(previous, name)
        }
        assert set(event.changes) == differing, f"{batch.id}: changes {event.changes}"
        assert len(set(event.changes)) == len(event.changes), f"{batch.id}: repeated changes"
        assert event.finished == (batch.is_finished and not previous.is_finished)

    # Rests: where each attempt is checked and the next one prepared.

    async def rest(self, delay: float) -> None:
        """The watch's rest between cycles (or between tries of one): check, then change."""
        self.rests += 1
        served = self.server.served
        note(f"rest {self.rests} after {[attrs.astuple(s)[:3] for s in served]}: {delay}")
        failure = next((s.fault for s in served if s.fault and s.fault.transient), None)
        # A permanent failure ends the watch, even beside a transient one in the same attempt.
        permanent = [s for s in served if self.permanent(s)]
        assert not permanent, f"ignored a permanent failure: {permanent}"
        hint = failure.hint if failure is not None else None
        if failure is None and self.server.poll_after_ms is not None:
            hint = self.server.poll_after_ms / 1000
        expected = (
            self.options.interval
            if hint is None
            else max(self.options.interval, min(hint, MAX_HINT))
        )
        assert math.isclose(delay, expected), f"rested {delay} s, expected {expected} s"
        self.check_cost(served)
        if failure is not None:
            self.check_failed_attempt()
        else:
            self.check_cycle()
            assert not self.winding_down, "until_finished: everything finished, yet it goes on"
            assert not (self.options.until_finished and not self.unfinished()), (
                "until_finished: no watched batch is unfinished, yet the watch goes on"
            )
        if self.rests > 4 * self.options.cycles + 4:
            raise StopWatchingError
        if failure is None and self.cycles >= self.options.cycles:
            if not self.options.until_finished:
                raise StopWatchingError
            self.wind_down()
        else:
            self.change(after_failure=failure is not None)
        self.start_attempt()

    def check_cost(self, served: list[Served]) -> None:
        """An attempt reads at most the pages down to past its horizon second, and retrieves
        at most the followed unfinished batches its listing cannot show.

        With `n` batches listed at or after the horizon (now: those inserted while it read
        count too), a listing must read those `n` and then one more, older batch to know
        the horizon second is behind it (or reach the end of the list): at most
        `max(1, ceil((n + 1) / limit))` pages. That is within the `ceil(count / limit) + 1`
        of the contract's claim, `count` being the batches created since the oldest
        unfinished one (and since the previous cycle).
        """
        listed = [i for i in self.account.listed() if self.above(i)]
        pages = max(1, math.ceil((len(listed) + 1) / self.options.limit))
        lists = sum(1 for s in served if s.kind == "list")
        retrievals = sum(1 for s in served if s.kind == "retrieve")
        assert lists <= pages, f"{lists} pages where {pages} reach past the horizon"
        assert retrievals <= self.retrieve_budget, (
            f"{retrievals} retrievals where {self.retrieve_budget} suffice"
        )

    def check_failed_attempt(self) -> None:
        """A transient failure is logged, and the state stays bounded meanwhile."""
        warned = self.warnings[self.warned_at_start :]
        assert warned, "a transient failure of a cycle was not logged at WARNING"
        held = self.unfinished_at_start | self.unfinished()
        held |= {i for i in self.folded if self.above(i)}
        self.check_state(len(held))

    def check_cycle(self) -> None:
        """After a cycle: drops logged, every followed batch known as it is now, nothing
        missed, and the state bounded by the unfinished batches and those above the horizon."""
        assert not self.must_not_find, "a named id is gone (404), yet no NotFoundError"
        self.first_done = True
        self.cycles += 1
        warned = [r.getMessage() for r in self.warnings[self.warned_since_cycle :]]
        for batch_id in self.must_drop:
            assert any(batch_id in m for m in warned), f"{batch_id} dropped without a WARNING"
            del self.folded[batch_id]
            self.dropped.add(batch_id)
        for message in (r.getMessage() for r in self.warnings[self.warned_at_start :]):
            assert any(i in message for i in self.must_drop), f"a WARNING: {message}"
        self.warned_since_cycle = len(self.warnings)
        self.check_folded()
        self.horizon = self.next_horizon()
        unfinished = self.unfinished()
        above = {i for i in self.folded if self.above(i)}
        self.check_state(len(unfinished | above))

    def check_folded(self) -> None:
        """Every followed batch is known as the server has it now, and none is missed."""
        account = self.account
        shown = {i for i in self.listed_at_start if self.above(i)}
        self.must |= {i for i in shown if self.followed(i)}
        if self.options.ids is not None:
            self.must |= {i for i in self.options.ids if i in account.batches}
        self.must -= self.dropped
        for batch_id in account.batches:
            if not self.followed(batch_id) or not account.exists(batch_id):
                continue
            if batch_id in self.folded:
                assert self.folded[batch_id] == account.model(batch_id), (
                    f"{batch_id} changed, and no event said so"
                )
            else:
                assert batch_id not in self.must, f"{batch_id} was never reported"

    def above(self, batch_id: str) -> bool:
        """Whether the current cycle lists down to the batch: created in the horizon's
        second or later (whatever its microsecond), and at or after `since` (exactly)."""
        second, moment = self.account.second(batch_id), self.account.moment(batch_id)
        since = self.options.since
        return (self.horizon is None or second >= self.horizon) and (
            since is None or moment >= since
        )

    def next_horizon(self) -> int | None:
        """The next cycle's horizon: the oldest second among the unfinished batches this
        cycle's listing showed, or else the newest second it showed; never an older one."""
        account = self.account
        shown = {i for i in self.listed_at_start | self.inserted if self.above(i)}
        holding = [
            account.second(i) for i in shown & self.folded.keys() if not self.folded[i].is_finished
        ]
        # The newest second the listing showed, followed or not (its first batch).
        tops = [account.second(i) for i in self.listed_at_start & shown]
        horizon = min(holding) if holding else max(tops, default=self.horizon)
        if horizon is None or self.horizon is None:
            return horizon
        return max(horizon, self.horizon)

    def check_state(self, bound: int) -> None:
        """The watch holds no more batches than the bound."""
        assert self.watch is not None
        held = len(self.watch._state.known)
        assert held <= bound, f"the watch holds {held} batches where {bound} suffice"

    # The account between attempts.

    def change(self, *, after_failure: bool) -> None:
        """Progress, null-or-absent flips, new batches, batches vanishing and coming back,
        a new order within each second (not under a retried listing), and the next
        attempt's faults, hint and mid-listing insertions."""
        account, rng = self.account, self.rng
        for batch_id in sorted(account.batches):
            moving = account.exists(batch_id) and not account.is_finished(batch_id)
            if moving and rng.random() < 0.6:
                account.progress(batch_id, rng.randrange(6))
                note(f"  {batch_id} now {account.batches[batch_id]['status']}")
        existing = sorted(i for i in account.batches if account.exists(i))
        if existing:
            for _ in range(rng.choice((0, 0, 0, 1, 2))):
                account.flip_nulls(rng.choice(existing), rng.randrange(6))
            self.vanish_or_return(existing)
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            self.create(self.draw_new())
        if not after_failure and rng.random() < 0.7:
            account.shuffle_ties(rng.randrange(1 << 16))
        faults = {}
        if rng.random() < 0.25:
            faults[rng.randint(0, 4)] = rng.choice(DRAWN_FAULTS)
        poll_after = None
        if not faults and rng.random() < 0.2:
            poll_after = rng.choice((500, 40_000, 300_000))
        before = {}
        if rng.random() < 0.2:
            news = [self.draw_new() for _ in range(rng.randint(1, 2))]
            before[rng.randint(1, 2)] = self.inserter(news)
        note(f"  next: faults {faults}, poll-after {poll_after}, mid-listing {list(before)}")
        self.server.next_attempt(faults=faults, before_list=before, poll_after_ms=poll_after)

    def vanish_or_return(self, existing: list[str]) -> None:
        """A listed batch may stop being listed (retrievable still) or be deleted (404);
        one no longer listed may come back."""
        account, rng = self.account, self.rng
        for batch_id in sorted(account.hidden - account.deleted):
            if rng.random() < 0.3:
                account.hidden.discard(batch_id)
                note(f"  {batch_id} listed again")
        if rng.random() < 0.3:
            batch_id = rng.choice(existing)
            account.hidden.add(batch_id)
            note(f"  {batch_id} no longer listed")
        if rng.random() < 0.15:
            batch_id = rng.choice(existing)
            account.deleted.add(batch_id)
            note(f"  {batch_id} deleted")

    def wind_down(self) -> None:
        """Finish every batch and change nothing else: until_finished must end the watch."""
        self.winding_down = True
        for batch_id in self.account.batches:
            if self.account.exists(batch_id):
                self.account.finish(batch_id)
        note("  every batch finished")
        self.server.next_attempt()

    # The watch's end.

    def ended(self) -> None:
        """The watch ended by itself: only until_finished, after a cycle with nothing left."""
        served = self.server.served
        assert self.options.until_finished, "the watch ended though until_finished is off"
        assert not [s for s in served if s.fault is not None], "a failure ended the watch"
        self.check_cost(served)
        self.check_cycle()
        assert not self.unfinished(), "until_finished ended with a watched batch unfinished"

    def raised(self, error: aiobatches.APIError) -> None:
        """The watch raised: only a permanent failure served in this attempt may do that."""
        served = self.server.served
        permanent = {s.status for s in served if self.permanent(s)}
        note(f"raised {error!r} after {[attrs.astuple(s)[:3] for s in served]}")
        assert isinstance(error, aiobatches.APIStatusError), f"raised {error!r}"
        assert error.status_code in permanent, f"raised {error!r}, not a permanent failure"
        if error.status_code == 404:
            assert isinstance(error, aiobatches.NotFoundError)
        self.check_cost(served)


def draw_account(data: st.DataObject, rng: random.Random, api: Api = "openai") -> Account:
    """1 to 4 creation seconds, close or apart, each with 1 to 6 batches of any status;
    Anthropic's at 1 to 4 microseconds of each second (its edges among them), so that
    some batches share a moment and others part by a microsecond, made in any order."""
    account = Account(noise=rng.randrange(1 << 16), api=api)
    seconds = data.draw(
        st.lists(
            st.tuples(
                st.integers(1, 3), st.lists(st.sampled_from(STATUSES), min_size=1, max_size=6)
            ),
            min_size=1,
            max_size=4,
        ),
        label="seconds",
    )
    created = NOW
    for gap, statuses in seconds:
        created -= gap
        micros = [0] * len(statuses)
        if api == "anthropic":
            moments = st.sampled_from((0, 1, 999_998, 999_999)) | st.integers(0, MICRO - 1)
            pool = data.draw(st.lists(moments, min_size=1, max_size=4, unique=True), label="µs")
            at = st.sampled_from(pool)
            micros = data.draw(st.lists(at, min_size=len(statuses), max_size=len(statuses)), "at")
        for status, micro in zip(statuses, micros, strict=True):
            account.create(created, status, rng.random(), micro)
    for batch_id in sorted(account.batches):
        if rng.random() < 0.1:
            account.hidden.add(batch_id)
    return account


def draw_settings(data: st.DataObject, account: Account) -> Settings:
    """`since` anywhere (on a batch's moment, between two seconds or, from Anthropic, a
    microsecond after a batch, after every batch), `ids` among the batches (listed or not,
    with an unknown one sometimes), page sizes small and full."""
    moments = sorted({account.moment_us(i) for i in account.batches})
    since_kind = data.draw(
        st.sampled_from(["none", "none", "on a second", "between", "after all", "before all"]),
        label="since",
    )
    # Just after a batch, among the batches of its second, where Anthropic can tell.
    between = 1 if account.api == "anthropic" else -MICRO // 2
    since: float | None = None
    if since_kind == "on a second":
        since = data.draw(st.sampled_from(moments), label="since second") / MICRO
    elif since_kind == "between":
        since = (data.draw(st.sampled_from(moments), label="since second") + between) / MICRO
    elif since_kind == "after all":
        since = moments[-1] / MICRO + data.draw(st.integers(1, 3), label="since after")
    elif since_kind == "before all":
        since = moments[0] / MICRO - 100
    since_arg: float | datetime.datetime | None = since
    if since is not None and data.draw(st.booleans(), label="since as datetime"):
        since_arg = datetime.datetime.fromtimestamp(since, datetime.UTC)
    ids: tuple[str, ...] | None = None
    if data.draw(st.sampled_from([False, False, True]), label="ids"):
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(account.batches)), min_size=1, max_size=3, unique=True),
            label="ids chosen",
        )
        unknown = [f"{account.prefix}9999"]
        unknown = data.draw(st.sampled_from([[], [], [], unknown]), label="unknown id")
        ids = tuple(chosen + unknown)
    full = SHAPES[account.api].max_limit
    return Settings(
        limit=data.draw(st.sampled_from([1, 2, 3, full]), label="limit"),
        interval=data.draw(st.sampled_from([1.0, 30.0]), label="poll_interval"),
        since=since,
        since_arg=since_arg,
        ids=ids,
        until_finished=data.draw(st.booleans(), label="until_finished"),
        cycles=data.draw(st.integers(1, 8), label="cycles"),
    )


async def run(timeline: Timeline) -> None:
    """Watch the account to the timeline's end, checking every event and every rest."""
    options, server = timeline.options, timeline.server
    first_faults = {}
    if timeline.rng.random() < 0.2:
        first_faults[timeline.rng.randint(0, 3)] = timeline.rng.choice(DRAWN_FAULTS)
    server.next_attempt(faults=first_faults)
    timeline.start_attempt()
    with warnings_logged() as timeline.warnings, resting_with(timeline.rest):
        async with server.client() as client:
            watch = client.watch_batches(
                poll_interval=options.interval,
                since=options.since_arg,
                ids=options.ids,
                until_finished=options.until_finished,
                limit=options.limit,
            )
            timeline.watch = watch
            try:
                async with watch:
                    async for event in watch:
                        timeline.see(event)
            except StopWatchingError:
                pass
            except aiobatches.APIError as error:
                timeline.raised(error)
            else:
                timeline.ended()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("aiobatches")], (
        "the closed watch left work running"
    )


TIMELINES: Final = 1000
ANTHROPIC_TIMELINES: Final = 500
"""Half as many from Anthropic: the engine is the one OpenAI's timelines run through, and
what differs (microsecond moments, ties, shapes) shows in far fewer."""
EXACT: Final = settings(
    deadline=None,
    derandomize=True,
    # No explain phase: it traces every line of the client and server run by each of its
    # many replays, and keeps those traces (gigabytes), to annotate a failing example.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


async def check_timeline(data: st.DataObject, api: Api) -> None:
    """Draw an account of `api`, a watch's settings and a timeline, and watch it through."""
    rng = data.draw(st.randoms(use_true_random=False), label="rng")
    account = draw_account(data, rng, api)
    options = draw_settings(data, account)
    note(f"account: {[(i, account.moment(i), b['status']) for i, b in account.batches.items()]}")
    note(f"listed: {account.listed()}")
    async with AccountServer(account) as server:
        await run(Timeline(server, options, rng))


@settings(EXACT, max_examples=TIMELINES)
@given(data=st.data())
async def test_every_change_is_reported_once_on_adversarial_timelines(
    data: st.DataObject,
) -> None:
    """Each event and each rest agrees with the account; cost, state and rests are bounded."""
    await check_timeline(data, "openai")


@settings(EXACT, max_examples=ANTHROPIC_TIMELINES)
@given(data=st.data())
async def test_every_anthropic_change_is_reported_once_on_adversarial_timelines(
    data: st.DataObject,
) -> None:
    """Likewise from Anthropic, whose seconds hold many microseconds and ties at one."""
    await check_timeline(data, "anthropic")


# One focused test per defect of the watch as it landed.


async def watch_events(
    server: AccountServer, between: list[Callable[[], None]], **kwargs: Any
) -> list[aiobatches.BatchEvent[aiobatches.Batch]]:
    """The events of a watch whose rests run the given changes in turn, then stop it."""
    changes = iter(between)

    async def rest(_: float) -> None:
        change = next(changes, None)
        if change is None:
            raise StopWatchingError
        change()

    events: list[aiobatches.BatchEvent[aiobatches.Batch]] = []
    with resting_with(rest):
        async with server.client() as client:
            try:
                async with client.watch_batches(**kwargs) as watch:
                    async for event in watch:
                        events.append(event)
            except StopWatchingError:
                pass
    return events


async def test_ties_after_the_horizon_batch_are_looked_at_again() -> None:
    """Ties listed after the horizon batch, in its second, have their progress reported."""
    account = Account()
    account.create(NOW, "in_progress", 0.1)  # the horizon's batch, listed first
    second = account.create(NOW, "in_progress", 0.2)
    account.create(NOW - 5, "completed", 0.5)

    def progress() -> None:
        account.batches[second]["request_counts"]["completed"] += 1

    async with AccountServer(account) as server:
        events = await watch_events(server, [progress, lambda: None])
    updated = [e.batch.id for e in events if e.kind == "updated"]
    assert updated == [second], "the tie listed after the horizon batch was never looked at"


async def test_a_new_batch_in_the_newest_second_listed_after_it_is_reported() -> None:
    """A batch new in the newest known second, listed after that one, yields "created"."""
    account = Account()
    account.create(NOW, "completed", 0.1)
    account.create(NOW - 5, "completed", 0.5)

    def create_tie() -> None:
        account.create(NOW, "validating", 0.9)  # listed after the newest known one

    async with AccountServer(account) as server:
        events = await watch_events(server, [create_tie, lambda: None])
    kinds = [(e.kind, e.batch.id) for e in events]
    expected = [("existing", "batch_0001"), ("existing", "batch_0002"), ("created", "batch_0003")]
    assert kinds == expected, "the new batch listed after its tie was never reported"


async def test_since_after_every_batch_reports_no_old_batch_later() -> None:
    """With `since` later than every batch, later cycles report no old batch as "created"."""
    account = Account()
    account.create(NOW, "completed", 0.5)
    account.create(NOW - 5, "in_progress", 0.5)
    async with AccountServer(account) as server:
        events = await watch_events(server, [lambda: None, lambda: None], since=NOW + 10)
    assert [(e.kind, e.batch.id) for e in events] == [], "an old batch reported later"


async def test_a_vanished_unfinished_batch_is_retrieved_until_it_finishes() -> None:
    """A vanished unfinished batch is retrieved, so its finish ends an until_finished watch."""
    account = Account()
    vanishing = account.create(NOW - 10, "in_progress", 0.5)
    account.create(NOW - 20, "completed", 0.5)
    rests = 0

    async def rest(_: float) -> None:
        nonlocal rests
        rests += 1
        assert rests <= 5, "the watch never saw the vanished batch finish"
        account.create(NOW + rests, "completed", 0.5)
        if rests == 1:
            account.hidden.add(vanishing)
        if rests == 2:
            account.finish(vanishing)

    async with AccountServer(account) as server:
        with resting_with(rest):
            async with server.client() as client:
                watch = client.watch_batches(until_finished=True)
                events = [(e.kind, e.batch.id, e.finished) async for e in watch]
    assert ("updated", vanishing, True) in events
    assert rests == 2


async def test_a_vanished_unfinished_batch_does_not_pin_the_state() -> None:
    """A vanished unfinished batch no longer holds the horizon down: the state stays bounded."""
    account = Account()
    vanishing = account.create(NOW - 10, "in_progress", 0.5)
    held: list[int] = []
    watches: list[aiobatches.BatchWatch[aiobatches.Batch]] = []

    async def rest(_: float) -> None:
        held.append(len(watches[0]._state.known))
        if len(held) == 6:
            raise StopWatchingError
        account.hidden.add(vanishing)
        account.create(NOW + len(held), "completed", 0.5)

    async with AccountServer(account) as server:
        with resting_with(rest):
            async with server.client() as client:
                watches.append(client.watch_batches())
                with pytest.raises(StopWatchingError):
                    async for _ in watches[0]:
                        pass
    # The vanished batch and the newest second's batch: never the whole history since.
    assert max(held[2:]) <= 2, f"the state grew with each cycle: {held}"


async def test_existing_events_are_never_finished() -> None:
    """`event.finished` is false on "existing" events, even for finished batches."""
    account = Account()
    account.create(NOW, "completed", 0.5)
    account.create(NOW - 1, "failed", 0.5)
    async with AccountServer(account) as server, server.client() as client:
        watch = client.watch_batches(until_finished=True)
        events = [event async for event in watch]
    finished = [(e.kind, e.finished) for e in events]
    assert finished == [("existing", False)] * 2, "an existing event said finished"


class SecondSleeperError(Exception):
    """A second task reached the watch's rest: it was let in instead of refused."""


async def test_a_second_task_iterating_a_watch_gets_runtime_error() -> None:
    """A second task iterating a watch gets RuntimeError; the first goes on undisturbed."""
    account = Account()
    batch_id = account.create(NOW, "in_progress", 0.5)
    resting, release = asyncio.Event(), asyncio.Event()

    async def rest(_: float) -> None:
        if resting.is_set():
            raise SecondSleeperError
        resting.set()
        await release.wait()
        account.finish(batch_id)

    async with AccountServer(account) as server:
        with resting_with(rest):
            async with server.client() as client:
                watch: aiobatches.BatchWatch[aiobatches.Batch]
                watch = client.watch_batches(until_finished=True)
                assert (await anext(watch)).kind == "existing"
                first = asyncio.create_task(anext(watch))
                await resting.wait()
                (second,) = await asyncio.gather(anext(watch), return_exceptions=True)
                release.set()
                (outcome,) = await asyncio.gather(first, return_exceptions=True)
                await watch.aclose()
    refused = isinstance(second, RuntimeError) and "another task" in str(second)
    went_on = isinstance(outcome, aiobatches.BatchEvent)
    shown = f"the second task got {second!r}, then the first {outcome!r}"
    assert (refused, went_on) == (True, True), shown
    assert isinstance(outcome, aiobatches.BatchEvent)
    assert (outcome.kind, outcome.finished) == ("updated", True)


async def test_an_anthropic_watch_lists_pages_of_a_thousand() -> None:
    """An Anthropic watch takes `limit=1000`, as its listings do (docs/anthropic.md)."""
    account = Account(api="anthropic")
    for gap in range(3):
        account.create(NOW - gap, "completed", 0.5, 250_000)
    async with AccountServer(account) as server, server.client() as client:
        events = [e async for e in client.watch_batches(until_finished=True, limit=1000)]
    assert [e.batch.id for e in events] == account.listed()
