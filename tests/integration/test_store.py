"""The store on real SQLite and PostgreSQL: one transaction per parent, CAS, exact values."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from twap_schemas import RequestContext, SubmitRequest, parse_request
from twap_schemas.common import ExecutionOutcome, ParentStatus, SliceStatus
from worker.brokers.orders import Lifecycle, OrderView
from worker.core import events
from worker.core.outcomes import Outcome
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.store import outcomes
from worker.store.repository import Store
from worker.store.switches import BREAKER, KILL_SWITCH
from worker.store.tables import outbox, request_receipts, slices, switches

NOW = datetime.now(UTC).replace(microsecond=0)


def make_plan(now: datetime = NOW, **overrides: object) -> tuple[ParentRecord, list[SliceRecord]]:
    body = {"type": "submit", "strategy_id": "s1", "symbol": "AAPL", "side": "buy", "qty": 103,
            "duration_seconds": 300, "order_type": "limit", "limit_price": "150.004"}
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}
    req = parse_request(json.dumps(body).encode(), RequestContext(now=now))
    assert isinstance(req, SubmitRequest)
    return build_plan(req, now=now)


async def test_parent_and_slices_round_trip_exactly(store: Store) -> None:
    """Prices come back as exact Decimals and datetimes come back aware UTC, on both databases."""
    parent, plan = make_plan()
    await store.create_parent(parent, plan, NOW)
    got = await store.get_parent(parent.parent_order_id)
    assert got is not None
    assert got.limit_price == Decimal("150.004")
    assert got.start_at == parent.start_at and got.start_at.tzinfo is not None
    rows = await store.get_slices(parent.parent_order_id)
    assert [r.slice_num for r in rows] == [0, 1, 2, 3, 4]
    assert [r.qty for r in rows] == [21, 21, 21, 20, 20]
    assert all(r.scheduled_time.tzinfo is not None for r in rows)
    assert rows[1].scheduled_time - rows[0].scheduled_time == timedelta(seconds=60)


async def test_parent_with_slices_is_one_transaction(store: Store) -> None:
    """A failing slice insert leaves no parent behind (all or nothing)."""
    parent, plan = make_plan()
    broken = [*plan, plan[0]]  # duplicate (parent, slice_num)
    with pytest.raises(IntegrityError):
        await store.create_parent(parent, broken, NOW)
    assert await store.get_parent(parent.parent_order_id) is None
    assert await store.get_slices(parent.parent_order_id) == []


async def test_claim_is_compare_and_set(store: Store) -> None:
    """Only one of many concurrent claims of a slice wins; the rest write nothing."""
    parent, plan = make_plan()
    await store.create_parent(parent, plan, NOW)
    results = await asyncio.gather(*(store.claim(parent.parent_order_id, 0, NOW)
                                     for _ in range(8)))
    assert sum(r is not None for r in results) == 1
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[0].status is SliceStatus.SUBMITTING


async def test_cancel_pending_counts_and_skips_claimed(store: Store) -> None:
    """Cancel turns scheduled slices canceled in one go; a claimed one stays in flight."""
    parent, plan = make_plan()
    await store.create_parent(parent, plan, NOW)
    assert await store.claim(parent.parent_order_id, 0, NOW) is not None
    result = await store.cancel(parent.parent_order_id, "test", NOW)
    assert len(result.canceled) == 4 and result.in_flight == 1
    assert await store.cancel_pending(parent.parent_order_id, "again", NOW) == 0
    statuses = [r.status for r in await store.get_slices(parent.parent_order_id)]
    assert statuses == [SliceStatus.SUBMITTING] + [SliceStatus.CANCELED] * 4
    got = await store.get_parent(parent.parent_order_id)
    assert got is not None and got.status is ParentStatus.CANCELED


async def test_late_writer_cannot_overwrite_a_canceled_slice(store: Store) -> None:
    """A claim after a cancel does nothing; a finish from a stale status does nothing."""
    parent, plan = make_plan()
    await store.create_parent(parent, plan, NOW)
    await store.cancel(parent.parent_order_id, None, NOW)
    assert await store.claim(parent.parent_order_id, 1, NOW) is None
    stale = plan[1]  # still says `scheduled`
    assert await store.finish(parent, stale,
        Outcome(SliceStatus.EXPIRED, stale.attempts),
        NOW, max_failures=5) is None
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[1].status is SliceStatus.CANCELED


async def test_completion_when_every_slice_is_terminal(store: Store) -> None:
    """Submitted slices are still working: the parent completes when the last order ends at
    the broker (filled here), and writes parent.completed."""
    parent, plan = make_plan(duration_seconds=120, interval_seconds=60, qty=10)
    await store.create_parent(parent, plan, NOW)
    for num in range(2):
        claimed = await store.claim(parent.parent_order_id, num, NOW)
        assert claimed is not None
        await store.finish(parent, claimed[1],
            Outcome(SliceStatus.SUBMITTED, 1, broker_order_id=f"b{num}", sent_at=NOW),
            NOW, max_failures=5
        )
    got = await store.get_parent(parent.parent_order_id)
    assert got is not None and got.status is ParentStatus.ACTIVE and got.working_qty == 10
    for record in plan:
        await store.apply_view(OrderView(record.client_order_id, f"b{record.slice_num}",
                                         Lifecycle.FILLED, 5, Decimal("10"), NOW), NOW)
    got = await store.get_parent(parent.parent_order_id)
    assert got is not None and got.status is ParentStatus.COMPLETED
    assert (got.filled_qty, got.working_qty, got.outcome) == (10, 0, ExecutionOutcome.FILLED)
    types = [m.type for _, m in await store.outbox_fetch(100)]
    assert types == ["slice.submitted", "slice.submitted", "slice.fill", "slice.filled",
                     "slice.fill", "slice.filled", "parent.completed"]


async def test_switches_fail_closed_when_missing(store: Store) -> None:
    """Seeded released; a missing row reads as engaged and tripped."""
    state = await store.switches()
    assert not state.kill_switch_engaged and not state.breaker_tripped
    async with store.transaction() as conn:
        await conn.execute(delete(switches).where(switches.c.name == KILL_SWITCH))
    state = await store.switches()
    assert state.kill_switch_engaged and state.breaker_tripped


async def test_unreadable_switch_state_is_engaged(tmp_path: Path) -> None:
    """A database that can't be read counts as engaged and tripped (fail closed)."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    for url in (f"sqlite+aiosqlite:///{garbage}",
                "postgresql+asyncpg://postgres@127.0.0.1:1/none"):
        broken = Store.from_url(url)
        try:
            state = await broken.switches()
        finally:
            await broken.close()
        assert state.kill_switch_engaged and state.breaker_tripped, url


async def test_switch_change_is_persisted_with_its_event(store: Store) -> None:
    """Engaging writes the state and control.kill_switch.engaged; repeating changes nothing."""
    assert await store.set_switch(KILL_SWITCH, True, NOW, reason="r", operator="op")
    assert not await store.set_switch(KILL_SWITCH, True, NOW, reason="r", operator="op")
    state = await store.switches()
    assert state.kill_switch_engaged and state.kill_switch_reason == "r"
    types = [m.type for _, m in await store.outbox_fetch(10)]
    assert types == ["control.kill_switch.engaged"]


async def test_breaker_trips_after_consecutive_failures(store: Store) -> None:
    """N failed slices in a row trip the breaker automatically; a success resets the count."""
    parent, plan = make_plan(qty=10, duration_seconds=600, interval_seconds=60)
    await store.create_parent(parent, plan, NOW)

    async def fail(num: int) -> None:
        claimed = await store.claim(parent.parent_order_id, num, NOW)
        assert claimed is not None
        await store.finish(parent, claimed[1],
            Outcome(SliceStatus.FAILED, 3, reason="boom"),
            NOW, max_failures=3
        )

    await fail(0)
    await fail(1)
    ok = await store.claim(parent.parent_order_id, 2, NOW)
    assert ok is not None
    await store.finish(parent, ok[1],
        Outcome(SliceStatus.SUBMITTED, 1, broker_order_id="b"),
        NOW, max_failures=3
    )
    await fail(3)
    await fail(4)
    assert not (await store.switches()).breaker_tripped
    await fail(5)
    state = await store.switches()
    assert state.breaker_tripped and "3 consecutive slice failures" in (state.breaker_reason or "")
    assert await store.set_switch(BREAKER, False, NOW, reason=None, operator="op")
    assert (await store.switches()).consecutive_failures == 0


async def test_expire_overdue_only_touches_missed_scheduled_slices(store: Store) -> None:
    """Slices due longer ago than the grace become expired with events; others stay."""
    old_start = NOW - timedelta(seconds=150)
    parent, plan = make_plan(old_start, start_at=old_start.isoformat(), duration_seconds=300,
                             interval_seconds=60, order_type="market", limit_price=None)
    await store.create_parent(parent, plan, NOW - timedelta(seconds=150))
    expired = await store.expire_overdue(NOW, timedelta(seconds=60))
    assert expired == 2  # due at -150 s and -90 s; -30 s is within the grace
    statuses = [r.status for r in await store.get_slices(parent.parent_order_id)]
    assert statuses[:2] == [SliceStatus.EXPIRED] * 2
    assert statuses[2:] == [SliceStatus.SCHEDULED] * 3
    pending = await store.pending_parents()
    assert [(p.parent_order_id, p.next_slice) for p in pending] == [(parent.parent_order_id, 2)]
    assert pending[0].next_due.tzinfo is not None


async def test_expire_overdue_writes_parents_in_id_order(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overdue slices are chosen oldest first but written in (parent id, slice num) order,
    the order finish_many locks parents in: other orders can deadlock on PostgreSQL."""
    def overdue_plan(age: int, strategy: str) -> tuple[ParentRecord, list[SliceRecord]]:
        start = NOW - timedelta(seconds=age)
        return make_plan(start, strategy_id=strategy, duration_seconds=120,
                         interval_seconds=60, order_type="market", limit_price=None,
                         start_at=start.isoformat())

    # The older parent (its slices first in scheduled-time order) has the greater id. Ids are
    # hashes of the plan, and the plan holds the wall-clock start: take the lowest newer id and
    # the highest older id of 50 each, so that the two are in that order whatever the hour.
    newer = min((overdue_plan(300, f"n{i}") for i in range(50)),
                key=lambda plan: plan[0].parent_order_id)
    older = max((overdue_plan(600, f"s{i}") for i in range(50)),
                key=lambda plan: plan[0].parent_order_id)
    assert older[0].parent_order_id > newer[0].parent_order_id
    for parent, plan in (older, newer):
        await store.create_parent(parent, plan, NOW)
    written: list[tuple[str, int]] = []
    real = outcomes.transition

    async def recording(conn: Any, parent: ParentRecord, record: SliceRecord, outcome: Outcome,
                        now: datetime) -> SliceRecord | None:
        written.append((parent.parent_order_id, record.slice_num))
        return await real(conn, parent, record, outcome, now)

    monkeypatch.setattr(outcomes, "transition", recording)
    assert await store.expire_overdue(NOW, timedelta(seconds=60)) == 4
    low, high = newer[0].parent_order_id, older[0].parent_order_id
    assert written == [(low, 0), (low, 1), (high, 0), (high, 1)]


async def test_outbox_keeps_commit_order_and_removes_sent(store: Store) -> None:
    """Outbox rows come back in insertion order and disappear once removed."""
    parent, plan = make_plan()
    await store.create_parent(parent, plan, NOW)
    await store.cancel(parent.parent_order_id, "x", NOW)
    await store.cancel(parent.parent_order_id, "again", NOW)  # nothing left: no slice events
    await store.write_messages([events.control_changed("kill_switch", True, reason="r",
                                                       operator="o", automatic=False, at=NOW)], NOW)
    rows = await store.outbox_fetch(100)
    # The five slice.canceled events travel as one row, which the relay expands.
    assert [m.type for _, m in rows] == ["parent.canceled", events.SLICE_BATCH,
                                         "parent.canceled", "control.kill_switch.engaged"]
    assert [m.type for m in events.expand(rows[1][1])] == ["slice.canceled"] * 5
    await store.outbox_remove([rows[0][0], rows[1][0]])
    assert await store.outbox_backlog() == 2
    async with store.engine.connect() as conn:
        left = (await conn.execute(select(outbox.c.id))).all()
    assert [row[0] for row in left] == [rows[2][0], rows[3][0]]


async def test_unique_client_order_id(store: Store) -> None:
    """Two slices can never share a client_order_id."""
    parent, plan = make_plan()
    await store.create_parent(parent, plan, NOW)
    other, other_plan = make_plan(qty=104)
    clash = list(other_plan)
    clash[0] = replace(clash[0], client_order_id=plan[0].client_order_id)
    with pytest.raises(IntegrityError):
        await store.create_parent(other, clash, NOW)
    async with store.engine.connect() as conn:
        count = len((await conn.execute(select(slices.c.slice_num))).all())
    assert count == 5


async def test_prune_receipts_forgets_only_first_deliveries_older_than_the_cutoff(
    store: Store,
) -> None:
    """Receipts of first deliveries older than the cutoff go, in rounds of `limit`; newer stay."""
    rows = [{"message_id": f"old-{n}", "first_seen_at": NOW - timedelta(days=3)} for n in range(3)]
    rows.append({"message_id": "new", "first_seen_at": NOW})
    async with store.transaction() as conn:
        await conn.execute(insert(request_receipts), rows)
    cutoff = NOW - timedelta(days=2)
    assert await store.prune_receipts(cutoff, limit=2) == 2
    assert await store.prune_receipts(cutoff, limit=2) == 1
    async with store.engine.connect() as conn:
        left = (await conn.execute(select(request_receipts.c.message_id))).scalars().all()
    assert left == ["new"]
