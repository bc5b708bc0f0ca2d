"""Batched claims and outcomes (Store.claim_many / finish_many) on SQLite and PostgreSQL: the
per-slice guarantees hold for every slice of a batch."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from twap_schemas.common import ParentStatus, SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.brokers.orders import Lifecycle, OrderView
from worker.core.guards import stop_reason
from worker.core.outcomes import Outcome
from worker.core.planning import build_plan
from worker.core.records import ParentRecord
from worker.store.repository import Store
from worker.store.switches import BREAKER, KILL_SWITCH

pytestmark = pytest.mark.integration

GRACE = timedelta(hours=1)


async def _parent(store: Store, slices: int) -> ParentRecord:
    now = datetime.now(UTC)
    request = SubmitRequest(
        type="submit", strategy_id="batch", symbol="AAPL", side="buy", qty=slices,
        duration_seconds=slices, interval_seconds=1, request_id=uuid.uuid4().hex,
    )
    parent, records = build_plan(request, now=now)
    await store.create_parent(parent, records, now)
    return parent


async def _types(store: Store) -> list[str | None]:
    return [m.type for _, m in await store.outbox_fetch(10_000)]


async def test_a_claim_batch_claims_each_scheduled_slice_once(store: Store) -> None:
    """37 keys over two parents and an unknown one (one statement, padded to 64): every scheduled
    slice is claimed with its own parent; the same batch again claims nothing."""
    a, b = await _parent(store, 30), await _parent(store, 7)
    keys = [(a.parent_order_id, n) for n in range(30)] + [(b.parent_order_id, n) for n in range(7)]
    now = datetime.now(UTC)
    claimed = await store.claim_many([*keys, ("nope", 0)], now)
    assert sorted(claimed) == sorted(keys)
    for (pid, num), (parent, record, switches) in claimed.items():
        assert parent == (a if pid == a.parent_order_id else b)
        assert (record.parent_order_id, record.slice_num) == (pid, num)
        assert record.status is SliceStatus.SUBMITTING
        assert not switches.kill_switch_engaged and not switches.breaker_tripped
    assert await store.claim_many(keys, now) == {}
    assert {s.status for s in await store.get_slices(a.parent_order_id)} == {
        SliceStatus.SUBMITTING}


async def test_a_claim_batch_racing_a_cancel_never_both_claims_and_cancels(store: Store) -> None:
    """A batch claim of every slice against a cancel of the parent, 20 times, both orders: each
    slice is either claimed by the batch or canceled, never both, and the cancel counts the
    claimed ones as in flight."""
    for trial in range(20):
        parent = await _parent(store, 12)
        pid = parent.parent_order_id
        keys = [(pid, n) for n in range(12)]
        now = datetime.now(UTC)
        claim = store.claim_many(keys, now)
        cancel = store.cancel(pid, "race", now)
        results = await asyncio.gather(*((claim, cancel) if trial % 2 else (cancel, claim)))
        claimed = next(r for r in results if isinstance(r, dict))
        canceled = next(r for r in results if not isinstance(r, dict))
        assert not isinstance(canceled, dict)
        canceled_nums = {s.slice_num for s in canceled.canceled}
        claimed_nums = {num for _, num in claimed}
        assert claimed_nums.isdisjoint(canceled_nums)
        assert claimed_nums | canceled_nums == set(range(12))
        assert canceled.in_flight == len(claimed_nums)
        by_num = {s.slice_num: s.status for s in await store.get_slices(pid)}
        assert all(by_num[n] is SliceStatus.SUBMITTING for n in claimed_nums)
        assert all(by_num[n] is SliceStatus.CANCELED for n in canceled_nums)


async def test_a_kill_switch_engaged_between_two_claim_batches_stops_the_second(
    store: Store,
) -> None:
    """The switches come with each claim batch as its statement read them: the batch after
    the kill switch was engaged sees it (and its guard blocks every slice); the one before
    does not."""
    parent = await _parent(store, 8)
    pid = parent.parent_order_id
    now = datetime.now(UTC)
    first = await store.claim_many([(pid, n) for n in range(4)], now)
    assert await store.set_switch(KILL_SWITCH, True, now, reason="halt", operator="ops")
    second = await store.claim_many([(pid, n) for n in range(4, 8)], now)
    assert len(first) == len(second) == 4
    for p, record, switches in first.values():
        assert stop_reason(p.status, switches, late_by=now - record.scheduled_time,
                           grace=GRACE) is None
    for p, record, switches in second.values():
        assert switches.kill_switch_engaged and switches.kill_switch_reason == "halt"
        stop = stop_reason(p.status, switches, late_by=now - record.scheduled_time, grace=GRACE)
        assert stop is not None and stop.status is SliceStatus.BLOCKED_KILL_SWITCH


async def test_a_finish_batch_writes_each_outcome_once_with_its_event(store: Store) -> None:
    """Outcomes of a batch: each slice written from its claim, its event in the outbox; the
    parent completes once its last slice is terminal (the working order's fill, here); a stale
    item of the batch writes nothing."""
    parent = await _parent(store, 3)
    pid = parent.parent_order_id
    now = datetime.now(UTC)
    claimed = await store.claim_many([(pid, n) for n in range(3)], now)
    outcomes = [Outcome(SliceStatus.SUBMITTED, 1, "b-0", sent_at=now),
                Outcome(SliceStatus.REJECTED, 1, reason="no"),
                Outcome(SliceStatus.SUBMITTED, 1, "b-2", sent_at=now)]
    items = [(p, record, outcomes[n]) for n, (p, record, _) in
             enumerate(claimed[(pid, n)] for n in range(3))]
    written = await store.finish_many([*items, items[0]], now, max_failures=5)
    assert [w.status if w else None for w in written] == [
        SliceStatus.SUBMITTED, SliceStatus.REJECTED, SliceStatus.SUBMITTED, None]
    assert await _types(store) == ["slice.submitted", "slice.rejected", "slice.submitted"]
    found = await store.get_parent(pid)
    assert found is not None and found.status is ParentStatus.ACTIVE
    assert found.working_qty == items[0][1].qty + items[2][1].qty
    for n in (0, 2):
        record = items[n][1]
        await store.apply_view(OrderView(record.client_order_id, f"b-{n}", Lifecycle.FILLED,
                                         record.qty, Decimal("1"), now), now)
    found = await store.get_parent(pid)
    assert found is not None and found.status is ParentStatus.COMPLETED
    assert (await _types(store))[-1] == "parent.completed"


async def test_a_finish_batch_counts_the_breaker_in_order(store: Store) -> None:
    """failed, failed, submitted, failed, failed with max_failures=2: the breaker trips once
    (at the second failure) and the count ends at 2, as five single finishes would leave it."""
    parent = await _parent(store, 5)
    pid = parent.parent_order_id
    now = datetime.now(UTC)
    claimed = await store.claim_many([(pid, n) for n in range(5)], now)
    statuses = [SliceStatus.FAILED, SliceStatus.FAILED, SliceStatus.SUBMITTED,
                SliceStatus.FAILED, SliceStatus.FAILED]
    items = []
    for n, status in enumerate(statuses):
        p, record, _ = claimed[(pid, n)]
        broker = f"b-{n}" if status is SliceStatus.SUBMITTED else None
        items.append((p, record, Outcome(status, 1, broker, reason=f"r{n}")))
    await store.finish_many(items, now, max_failures=2)
    switches = await store.switches()
    assert switches.breaker_tripped and switches.consecutive_failures == 2
    assert switches.breaker_reason == "2 consecutive slice failures; last: r1"
    assert (await _types(store)).count(f"control.{BREAKER}.tripped") == 1


async def test_concurrent_finish_batches_keep_the_breaker_count_exact(store: Store) -> None:
    """Four batches of three failures each, recorded at the same moment: the count is 12."""
    parents = [await _parent(store, 3) for _ in range(4)]
    now = datetime.now(UTC)
    batches = []
    for parent in parents:
        claimed = await store.claim_many([(parent.parent_order_id, n) for n in range(3)], now)
        batches.append([(p, r, Outcome(SliceStatus.FAILED, 1, reason="x"))
                        for p, r, _ in claimed.values()])
    await asyncio.gather(*(store.finish_many(b, now, max_failures=100) for b in batches))
    assert (await store.switches()).consecutive_failures == 12
