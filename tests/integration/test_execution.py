"""The guarded executor against a real database: late slices, skips, recovery of claims."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from twap_schemas import RequestContext, SubmitRequest, parse_request
from twap_schemas.common import SliceStatus
from worker.brokers.sim import SimBroker
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.store.repository import Store

GRACE = timedelta(seconds=60)


async def planned(store: Store, start: datetime, **extra: object
                  ) -> tuple[ParentRecord, list[SliceRecord]]:
    body = {"type": "submit", "strategy_id": "x", "symbol": "AAPL", "side": "buy", "qty": 3,
            "duration_seconds": 3, "interval_seconds": 1, "start_at": start.isoformat(), **extra}
    req = parse_request(json.dumps(body).encode(), RequestContext(now=start))
    assert isinstance(req, SubmitRequest)
    parent, plan = build_plan(req, now=start)
    await store.create_parent(parent, plan, start)
    return parent, plan


def executor(store: Store, broker: SimBroker) -> SliceExecutor:
    return SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0, grace=GRACE),
                         lambda: datetime.now(UTC))


async def test_slice_fired_beyond_the_grace_expires_without_being_sent(store: Store) -> None:
    """A slice whose job runs more than the grace late ends expired, with its event."""
    start = datetime.now(UTC) - timedelta(seconds=120)
    parent, plan = await planned(store, start)
    broker = SimBroker()
    await executor(store, broker).run(parent.parent_order_id, 0, plan[0].scheduled_time)
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[0].status is SliceStatus.EXPIRED and not broker.orders
    assert [m.type for _, m in await store.outbox_fetch(10)] == ["slice.expired"]


async def test_a_slice_that_is_not_scheduled_is_skipped_without_a_write(store: Store) -> None:
    """Firing a canceled slice sends nothing and writes nothing."""
    start = datetime.now(UTC)
    parent, plan = await planned(store, start)
    await store.cancel(parent.parent_order_id, "x", start)
    before = await store.outbox_backlog()
    broker = SimBroker()
    await executor(store, broker).run(parent.parent_order_id, 0, plan[0].scheduled_time)
    assert not broker.orders and await store.outbox_backlog() == before


async def test_resume_finds_an_order_that_reached_the_broker(store: Store) -> None:
    """A slice left `submitting` whose order IS at the broker becomes submitted, not resent."""
    start = datetime.now(UTC)
    parent, plan = await planned(store, start)
    claimed = await store.claim(parent.parent_order_id, 0, start)
    assert claimed is not None
    broker = SimBroker()
    from worker.brokers.base import OrderRequest

    await broker.submit(OrderRequest(plan[0].client_order_id, "AAPL", parent.side, 1))
    ((p, record),) = await store.claimed_slices()
    await executor(store, broker).resume(p, record)
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[0].status is SliceStatus.FILLED and broker.attempts == 1


async def test_resume_sends_a_claimed_slice_the_broker_never_saw(store: Store) -> None:
    """A slice left `submitting` that is not at the broker and within the grace goes now."""
    start = datetime.now(UTC)
    parent, plan = await planned(store, start)
    assert await store.claim(parent.parent_order_id, 0, start) is not None
    broker = SimBroker()
    ((p, record),) = await store.claimed_slices()
    await executor(store, broker).resume(p, record)
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[0].status is SliceStatus.FILLED
    assert list(broker.orders) == [plan[0].client_order_id]


async def test_kill_switch_is_checked_again_before_a_retry(store: Store) -> None:
    """Engaged while the first attempt failed: the retry does not happen, slice blocked."""
    start = datetime.now(UTC)
    parent, plan = await planned(store, start)
    broker = SimBroker()
    broker.fail_next("transient")
    ex = executor(store, broker)

    original = broker.submit

    async def submit_then_engage(order, before_send=None):  # type: ignore[no-untyped-def]
        try:
            if before_send is None:
                return await original(order)
            return await original(order, before_send)
        finally:
            await store.set_switch("kill_switch", True, datetime.now(UTC), reason="halt",
                                   operator="t")

    broker.submit = submit_then_engage  # type: ignore[method-assign]
    await ex.run(parent.parent_order_id, 0, plan[0].scheduled_time)
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[0].status is SliceStatus.BLOCKED_KILL_SWITCH and broker.attempts == 1
    assert not broker.orders


async def test_breaker_is_checked_again_before_a_retry(store: Store) -> None:
    """Tripped while the first attempt failed: the retry does not happen, slice blocked."""
    start = datetime.now(UTC)
    parent, plan = await planned(store, start)
    broker = SimBroker()
    broker.fail_next("transient")
    original = broker.submit

    async def submit_then_trip(order, before_send=None):  # type: ignore[no-untyped-def]
        try:
            if before_send is None:
                return await original(order)
            return await original(order, before_send)
        finally:
            await store.set_switch("breaker", True, datetime.now(UTC), reason="desk halt",
                                   operator="t")

    broker.submit = submit_then_trip  # type: ignore[method-assign]
    await executor(store, broker).run(parent.parent_order_id, 0, plan[0].scheduled_time)
    (first, *_) = await store.get_slices(parent.parent_order_id)
    assert first.status is SliceStatus.BLOCKED_CIRCUIT_BREAKER and first.reason == "desk halt"
    assert broker.attempts == 1 and not broker.orders


async def test_resume_does_not_send_a_slice_whose_parent_was_canceled(store: Store) -> None:
    """Claimed, then the parent canceled, then a crash: resume ends it canceled, sends nothing."""
    start = datetime.now(UTC)
    parent, _ = await planned(store, start)
    assert await store.claim(parent.parent_order_id, 0, start) is not None
    await store.cancel(parent.parent_order_id, "desk says stop", start)
    broker = SimBroker()
    ((p, record),) = await store.claimed_slices()
    await executor(store, broker).resume(p, record)
    (first, *_) = await store.get_slices(parent.parent_order_id)
    assert first.status is SliceStatus.CANCELED and broker.attempts == 0 and not broker.orders
    events = [m.type for _, m in await store.outbox_fetch(50)]
    assert "slice.canceled" in events


async def test_resume_does_not_send_while_the_kill_switch_is_engaged(store: Store) -> None:
    """Claimed, kill switch engaged, a crash: resume ends it blocked_kill_switch, unsent."""
    start = datetime.now(UTC)
    parent, _ = await planned(store, start)
    assert await store.claim(parent.parent_order_id, 0, start) is not None
    await store.set_switch("kill_switch", True, start, reason="halt", operator="t")
    broker = SimBroker()
    ((p, record),) = await store.claimed_slices()
    await executor(store, broker).resume(p, record)
    (first, *_) = await store.get_slices(parent.parent_order_id)
    assert first.status is SliceStatus.BLOCKED_KILL_SWITCH and not broker.orders


async def test_a_send_within_the_freshness_of_its_claim_reuses_the_claims_guard_read(
    store: Store,
) -> None:
    """A send within `guard_fresh` of its claim makes no second guard read; a retry reads."""
    start = datetime.now(UTC)
    parent, plan = await planned(store, start)
    broker = SimBroker()
    ex = SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0, grace=GRACE,
                                                      guard_fresh=60.0),
                       lambda: datetime.now(UTC))
    reads: list[int] = []
    original = store.guard_state

    async def counted(parent_id: str, slice_num: int):  # type: ignore[no-untyped-def]
        reads.append(slice_num)
        return await original(parent_id, slice_num)

    store.guard_state = counted  # type: ignore[method-assign]
    await ex.run(parent.parent_order_id, 0, plan[0].scheduled_time)
    broker.fail_next("transient")
    await ex.run(parent.parent_order_id, 1, plan[1].scheduled_time)
    statuses = [s.status for s in await store.get_slices(parent.parent_order_id)][:2]
    assert statuses == [SliceStatus.FILLED, SliceStatus.FILLED]
    assert reads == [1]


async def test_resume_clears_the_note_an_earlier_lookup_left(store: Store) -> None:
    """A slice noted 'order status unknown' before a restart is settled without that reason."""
    start = datetime.now(UTC)
    parent, _ = await planned(store, start)
    assert await store.claim(parent.parent_order_id, 0, start) is not None
    assert await store.note_claimed(parent.parent_order_id, 0, "order status unknown", start)
    ((p, record),) = await store.claimed_slices()
    await executor(store, SimBroker()).resume(p, record)
    (first, *_) = await store.get_slices(parent.parent_order_id)
    assert (first.status, first.reason) == (SliceStatus.FILLED, None)
