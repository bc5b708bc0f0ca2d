"""The dispatch coalescer (worker.runtime.batching) on the in-memory store: calls made in one
event-loop turn go as one claim_many / finish_many, each caller gets its own answer, and a
failed group fails every caller as its single call would have."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.support.memory_store import MemoryStore
from twap_schemas.common import SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.brokers.orders import Lifecycle, OrderView
from worker.brokers.sim import SimBroker
from worker.core.outcomes import Outcome
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.runtime.batching import ClaimBatcher, Coalescer, FinishBatcher
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.runtime.ports import Claimed, Finished, SliceKey

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class CountingStore(MemoryStore):
    """Records every store call the coalescer makes; `fail_with` makes the batch calls raise."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []
        self.fail_with: Exception | None = None

    async def claim(self, parent_id: str, slice_num: int, now: datetime) -> Claimed | None:
        self.calls.append(("claim", 1))
        return await super().claim(parent_id, slice_num, now)

    async def claim_many(self, keys: list[SliceKey], now: datetime) -> dict[SliceKey, Claimed]:
        self.calls.append(("claim_many", len(keys)))
        if self.fail_with is not None:
            raise self.fail_with
        out = {}
        for pid, num in dict.fromkeys(keys):
            claimed = await MemoryStore.claim(self, pid, num, now)
            if claimed is not None:
                out[(pid, num)] = claimed
        return out

    async def finish(self, parent: ParentRecord, record: SliceRecord, outcome: Outcome,
                     now: datetime, *, max_failures: int,
                     view: OrderView | None = None) -> SliceRecord | None:
        self.calls.append(("finish", 1))
        return (await MemoryStore.finish_many(self, [(parent, record, outcome)], now,
                                              max_failures=max_failures, views=[view]))[0]

    async def finish_many(self, items: list[Finished], now: datetime, *, max_failures: int,
                          views: Sequence[OrderView | None] | None = None,
                          ) -> list[SliceRecord | None]:
        self.calls.append(("finish_many", len(items)))
        if self.fail_with is not None:
            raise self.fail_with
        return await super().finish_many(items, now, max_failures=max_failures, views=views)


def _setup(slices: int) -> tuple[CountingStore, ParentRecord]:
    request = SubmitRequest(type="submit", strategy_id="mem", symbol="AAPL", side="buy",
                            qty=slices, duration_seconds=slices, interval_seconds=1,
                            request_id=uuid.uuid4().hex, start_at=NOW)
    parent, records = build_plan(request, now=NOW)
    store = CountingStore()
    store.add(parent, records)
    return store, parent


async def test_claims_of_one_turn_go_as_one_claim_many_each_with_its_own_answer() -> None:
    """Five claims started together (one of a slice already claimed): one claim_many of five
    keys; each caller gets its own slice, the one not scheduled gets None."""
    store, parent = _setup(5)
    pid = parent.parent_order_id
    await store.claim(pid, 3, NOW)
    store.calls.clear()
    batcher = ClaimBatcher(store)
    answers = await asyncio.gather(*(batcher.claim(pid, n, NOW) for n in range(5)))
    assert store.calls == [("claim_many", 5)]
    assert answers[3] is None
    for n in (0, 1, 2, 4):
        claimed = answers[n]
        assert claimed is not None
        assert (claimed[1].parent_order_id, claimed[1].slice_num) == (pid, n)
        assert claimed[1].status is SliceStatus.SUBMITTING and claimed[0] == parent
    assert batcher.groups == 1


async def test_a_key_asked_twice_in_one_group_is_claimed_for_one_caller_only() -> None:
    """Two callers of the same slice in one turn: one gets the claim, the other None (it must
    never be sent twice on one claim)."""
    store, parent = _setup(2)
    pid = parent.parent_order_id
    batcher = ClaimBatcher(store)
    answers = await asyncio.gather(batcher.claim(pid, 0, NOW), batcher.claim(pid, 0, NOW),
                                   batcher.claim(pid, 1, NOW))
    assert [a is not None for a in answers] == [True, False, True]


async def test_a_lone_claim_is_the_single_claim() -> None:
    store, parent = _setup(2)
    claimed = await ClaimBatcher(store).claim(parent.parent_order_id, 1, NOW)
    assert store.calls == [("claim", 1)]
    assert claimed is not None and claimed[1].slice_num == 1


async def test_claims_of_separate_turns_are_separate_groups() -> None:
    store, parent = _setup(2)
    batcher = ClaimBatcher(store)
    await batcher.claim(parent.parent_order_id, 0, NOW)
    await batcher.claim(parent.parent_order_id, 1, NOW)
    assert store.calls == [("claim", 1), ("claim", 1)]


async def test_a_full_group_leaves_at_once_and_the_rest_follows() -> None:
    """max_size 2, five claims in one turn: groups of 2, 2 and 1."""
    store, parent = _setup(5)
    batcher = ClaimBatcher(store, max_size=2)
    answers = await asyncio.gather(*(batcher.claim(parent.parent_order_id, n, NOW)
                                     for n in range(5)))
    assert store.calls == [("claim_many", 2), ("claim_many", 2), ("claim", 1)]
    assert [a[1].slice_num for a in answers if a is not None] == [0, 1, 2, 3, 4]


async def test_an_outage_of_the_claim_group_reaches_every_caller_and_claims_nothing() -> None:
    """The group's statement fails with an outage: every caller gets that error (its own
    with_db_retry then retries it), nothing is claimed, nothing tried alone."""
    store, parent = _setup(3)
    outage = ConnectionError("database went away")
    store.fail_with = outage
    batcher = ClaimBatcher(store)
    answers = await asyncio.gather(*(batcher.claim(parent.parent_order_id, n, NOW)
                                     for n in range(3)), return_exceptions=True)
    assert answers == [outage, outage, outage]
    assert store.calls == [("claim_many", 3)]
    assert {r.status for r in store.slices.values()} == {SliceStatus.SCHEDULED}


async def test_any_other_error_of_the_group_sends_each_claim_alone() -> None:
    """A non-outage error of the group is not assumed to be everyone's: each claim is sent
    alone, and each caller gets its own claim."""
    store, parent = _setup(3)
    store.fail_with = ValueError("one bad key")
    batcher = ClaimBatcher(store)
    answers = await asyncio.gather(*(batcher.claim(parent.parent_order_id, n, NOW)
                                     for n in range(3)))
    assert store.calls == [("claim_many", 3), ("claim", 1), ("claim", 1), ("claim", 1)]
    assert [a[1].slice_num for a in answers if a is not None] == [0, 1, 2]


async def test_a_caller_canceled_before_its_group_leaves_is_not_claimed() -> None:
    store, parent = _setup(2)
    pid = parent.parent_order_id
    batcher = ClaimBatcher(store)
    gone = asyncio.ensure_future(batcher.claim(pid, 0, NOW))
    stays = asyncio.ensure_future(batcher.claim(pid, 1, NOW))
    await asyncio.sleep(0)  # both are waiting for the end of the turn
    gone.cancel()
    assert (await stays) is not None
    assert store.calls == [("claim", 1)]
    assert store.slices[(pid, 0)].status is SliceStatus.SCHEDULED


async def _claimed(store: CountingStore, parent: ParentRecord, n: int) -> list[Finished]:
    out = []
    for num in range(n):
        claimed = await MemoryStore.claim(store, parent.parent_order_id, num, NOW)
        assert claimed is not None
        out.append((parent, claimed[1], Outcome(SliceStatus.SUBMITTED, 1, f"b-{num}",
                                                sent_at=NOW)))
    return out


async def test_outcomes_of_one_turn_go_as_one_finish_many_each_with_its_own_row() -> None:
    store, parent = _setup(3)
    items = await _claimed(store, parent, 3)
    batcher = FinishBatcher(store, max_failures=5)
    written = await asyncio.gather(*(batcher.finish(p, r, o, NOW) for p, r, o in items))
    assert store.calls == [("finish_many", 3)]
    assert [w.broker_order_id if w else None for w in written] == ["b-0", "b-1", "b-2"]
    # Submitted is working at the broker, not terminal: the parent stays active.
    assert store.types() == ["slice.submitted"] * 3


async def test_views_of_a_finish_group_are_applied_with_their_outcomes() -> None:
    """Three orders that came back filled at once: one finish_many, and each slice ends
    filled at its own price, the parent completed filled."""
    store, parent = _setup(3)
    items = await _claimed(store, parent, 3)
    views = [OrderView(r.client_order_id, f"b-{i}", Lifecycle.FILLED, r.qty,
                       Decimal("10.5") + i, NOW) for i, (_, r, _) in enumerate(items)]
    batcher = FinishBatcher(store, max_failures=5)
    written = await asyncio.gather(*(batcher.finish(p, r, o, NOW, v)
                                     for (p, r, o), v in zip(items, views, strict=True)))
    assert store.calls == [("finish_many", 3)]
    assert [w.status if w else None for w in written] == [SliceStatus.FILLED] * 3
    assert [w.fill_notional / w.filled_qty if w else None for w in written] == [
        Decimal("10.5"), Decimal("11.5"), Decimal("12.5")]
    assert store.types().count("slice.filled") == 3
    assert store.types()[-1] == "parent.completed"


async def test_a_lone_outcome_is_the_single_finish() -> None:
    store, parent = _setup(2)
    (item, _) = await _claimed(store, parent, 2)
    written = await FinishBatcher(store, max_failures=5).finish(*item, NOW)
    assert store.calls == [("finish", 1)]
    assert written is not None and written.status is SliceStatus.SUBMITTED


async def test_an_outage_of_the_finish_group_reaches_every_caller_and_writes_nothing() -> None:
    store, parent = _setup(2)
    items = await _claimed(store, parent, 2)
    outage = ConnectionError("database went away")
    store.fail_with = outage
    batcher = FinishBatcher(store, max_failures=5)
    answers = await asyncio.gather(*(batcher.finish(p, r, o, NOW) for p, r, o in items),
                                   return_exceptions=True)
    assert answers == [outage, outage]
    assert {r.status for r in store.slices.values()} == {SliceStatus.SUBMITTING}
    assert store.outbox == []


async def test_any_other_error_of_the_finish_group_writes_each_outcome_alone() -> None:
    """A stale item in the group makes finish_many raise here: each outcome is then written
    alone, each caller with its own answer."""
    store, parent = _setup(2)
    items = await _claimed(store, parent, 2)
    store.fail_with = RuntimeError("deadlock detected")
    batcher = FinishBatcher(store, max_failures=5)
    written = await asyncio.gather(*(batcher.finish(p, r, o, NOW) for p, r, o in items))
    assert store.calls == [("finish_many", 2), ("finish", 1), ("finish", 1)]
    assert [w.broker_order_id if w else None for w in written] == ["b-0", "b-1"]


class OneStatementStore(CountingStore):
    """A store whose lone outcome is one statement, as PostgreSQL's is."""

    one_statement_outcomes = True


async def test_where_a_lone_outcome_is_one_statement_small_groups_go_as_single_calls() -> None:
    """Up to eight outcomes of one turn: eight single finishes (cheaper than a transaction for
    a few, as measured on PostgreSQL); nine: one finish_many."""
    store = OneStatementStore()
    request = SubmitRequest(type="submit", strategy_id="mem", symbol="AAPL", side="buy",
                            qty=17, duration_seconds=17, interval_seconds=1,
                            request_id=uuid.uuid4().hex, start_at=NOW)
    parent, records = build_plan(request, now=NOW)
    store.add(parent, records)
    items = await _claimed(store, parent, 17)
    batcher = FinishBatcher(store, max_failures=5)
    eight = await asyncio.gather(*(batcher.finish(p, r, o, NOW) for p, r, o in items[:8]))
    assert store.calls == [("finish", 1)] * 8
    store.calls.clear()
    nine = await asyncio.gather(*(batcher.finish(p, r, o, NOW) for p, r, o in items[8:]))
    assert store.calls == [("finish_many", 9)]
    assert [w.broker_order_id if w else None for w in [*eight, *nine]] == [
        f"b-{n}" for n in range(17)]


async def test_single_calls_of_a_group_each_answer_their_own_caller() -> None:
    """Two outcomes sent as single calls, one of them stale: the stale one's caller gets None,
    the other its row."""
    store = OneStatementStore()
    request = SubmitRequest(type="submit", strategy_id="mem", symbol="AAPL", side="buy",
                            qty=2, duration_seconds=2, interval_seconds=1,
                            request_id=uuid.uuid4().hex, start_at=NOW)
    parent, records = build_plan(request, now=NOW)
    store.add(parent, records)
    (first, second) = await _claimed(store, parent, 2)
    await MemoryStore.finish(store, *first, NOW, max_failures=5)  # settled elsewhere first
    batcher = FinishBatcher(store, max_failures=5)
    written = await asyncio.gather(batcher.finish(*first, NOW), batcher.finish(*second, NOW))
    assert written[0] is None
    assert written[1] is not None and written[1].broker_order_id == "b-1"


def test_a_coalescer_needs_room_for_one_call() -> None:
    async def send(items: list[int]) -> list[int | Exception]:
        return [*items]

    with pytest.raises(ValueError, match="max_size must be at least 1, got 0"):
        Coalescer(send, 0)


def _executor(store: CountingStore, broker: SimBroker, **policy: object) -> SliceExecutor:
    return SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0, **policy),  # type: ignore[arg-type]
                         lambda: NOW)


async def test_slices_firing_together_are_claimed_and_recorded_in_groups() -> None:
    """Six slices fired in the same moment: one claim_many, one finish_many, each sent once."""
    store, parent = _setup(6)
    broker = SimBroker()
    executor = _executor(store, broker)
    await asyncio.gather(*(executor.run(parent.parent_order_id, n, NOW) for n in range(6)))
    assert store.calls == [("claim_many", 6), ("finish_many", 6)]
    assert broker.attempts == 6
    # The sim fills a market order at once: its answer is applied with the outcome.
    assert {r.status for r in store.slices.values()} == {SliceStatus.FILLED}


async def test_a_kill_switch_engaged_between_two_claim_groups_stops_the_second() -> None:
    """The switch is engaged right after the first group's claim: the first group's slices
    went out on what their claim read (no pre-send read within guard_fresh), the second
    group's claim reads it and sends nothing."""
    store, parent = _setup(6)
    pid = parent.parent_order_id
    broker = SimBroker()
    executor = _executor(store, broker, guard_fresh=60.0)
    store.after_claim = lambda key: (store.engage_kill_switch("halt") if key == (pid, 2)
                                     else None)
    await asyncio.gather(*(executor.run(pid, n, NOW) for n in range(3)))
    await asyncio.gather(*(executor.run(pid, n, NOW) for n in range(3, 6)))
    assert [c for c in store.calls if c[0] == "claim_many"] == [("claim_many", 3)] * 2
    statuses = [store.slices[(pid, n)].status for n in range(6)]
    assert statuses == [SliceStatus.FILLED] * 3 + [SliceStatus.BLOCKED_KILL_SWITCH] * 3
    assert sorted(broker.orders) == sorted(store.slices[(pid, n)].client_order_id
                                           for n in range(3))
