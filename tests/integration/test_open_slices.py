"""parents.open_slices: kept in step by every status change; the finisher that takes it to
zero completes the parent, exactly once, even when many slices finish at the same moment."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from tests.integration.test_store import NOW, make_plan
from twap_schemas.common import ParentStatus, SliceStatus
from worker.brokers.orders import Lifecycle, OrderView
from worker.core.outcomes import Outcome
from worker.store import outcomes
from worker.store.repository import Store
from worker.store.tables import parents, slices

pytestmark = pytest.mark.integration


async def _open_and_pending(store: Store, parent_id: str) -> tuple[int, int]:
    async with store.engine.connect() as conn:
        open_slices = (
            await conn.execute(
                select(parents.c.open_slices).where(parents.c.parent_order_id == parent_id)
            )
        ).scalar_one()
        pending = (
            await conn.execute(
                select(func.count())
                .select_from(slices)
                .where(slices.c.parent_order_id == parent_id)
                .where(slices.c.status.in_(["scheduled", "submitting", "submitted"]))
            )
        ).scalar_one()
    return open_slices, pending


async def test_every_path_keeps_the_open_count(store: Store) -> None:
    parent, plan = make_plan(duration_seconds=360, interval_seconds=60, qty=60)
    pid = parent.parent_order_id
    await store.create_parent(parent, plan, NOW)
    assert await _open_and_pending(store, pid) == (6, 6)

    claimed = await store.claim(pid, 0, NOW)
    assert claimed is not None
    assert await _open_and_pending(store, pid) == (6, 6)  # submitting is still open
    await store.finish(parent, claimed[1],
        Outcome(SliceStatus.SUBMITTED, 1, broker_order_id="b0", sent_at=NOW),
        NOW, max_failures=5
    )
    assert await _open_and_pending(store, pid) == (6, 6)  # working at the broker: still open
    await store.apply_view(OrderView(plan[0].client_order_id, "b0", Lifecycle.CLOSED, 0, None,
                                     NOW, "canceled"), NOW)
    assert await _open_and_pending(store, pid) == (5, 5)

    claimed = await store.claim(pid, 1, NOW)
    assert claimed is not None
    await store.finish(parent, claimed[1],
        Outcome(SliceStatus.FAILED, 3, reason="boom"),
        NOW, max_failures=5
    )
    assert await _open_and_pending(store, pid) == (4, 4)

    # Slice 2 is due two minutes after the start: with a grace of 10 s it is overdue later on.
    expired = await store.expire_overdue(plan[2].scheduled_time + timedelta(seconds=11),
                                         timedelta(seconds=10), limit=1)
    assert expired == 1
    assert await _open_and_pending(store, pid) == (3, 3)

    canceled = await store.cancel_pending(pid, "done", NOW)
    assert canceled == 3
    assert await _open_and_pending(store, pid) == (0, 0)
    found = await store.get_parent(pid)
    assert found is not None and found.status is ParentStatus.CANCELED
    types = [m.type for _, m in await store.outbox_fetch(100)]
    assert "parent.completed" not in types


async def test_many_slices_finishing_at_once_complete_the_parent_once(pg_db: str) -> None:
    """Twenty slices end at once on one parent, ten by an outcome written as its own autocommit
    statement (rejected), ten by their orders' fills (a transaction each): the parent
    completes, with exactly one parent.completed, whichever commits last."""
    store = Store.from_url(pg_db, pool_size=20)
    try:
        for trial in range(5):
            parent, plan = make_plan(duration_seconds=1200, interval_seconds=60, qty=200,
                                     request_id=f"race-{trial}")
            await store.create_parent(parent, plan, NOW)
            claimed = [await store.claim(parent.parent_order_id, n, NOW) for n in range(20)]
            assert all(c is not None for c in claimed)
            for i, c in enumerate(claimed[10:]):
                await store.finish(parent, c[1], Outcome(SliceStatus.SUBMITTED, 1,
                                                         broker_order_id=f"b{i}", sent_at=NOW),
                                   NOW, max_failures=5)
            await asyncio.gather(*(
                store.finish(parent, c[1], Outcome(SliceStatus.REJECTED, 1, reason="no"),
                             NOW, max_failures=5)
                for c in claimed[:10]
            ), *(
                store.apply_view(OrderView(c[1].client_order_id, "b", Lifecycle.FILLED,
                                           c[1].qty, Decimal("1.5"), NOW), NOW)
                for c in claimed[10:]
            ))
            found = await store.get_parent(parent.parent_order_id)
            assert found is not None and found.status is ParentStatus.COMPLETED
            assert await _open_and_pending(store, parent.parent_order_id) == (0, 0)
        messages = [m for _, m in await store.outbox_fetch(1000)]
        assert sum(m.type == "parent.completed" for m in messages) == 5
        assert sum(m.type == "slice.filled" for m in messages) == 50
        assert sum(m.type == "slice.rejected" for m in messages) == 50
    finally:
        await store.close()


async def test_a_completion_left_undone_is_finished_by_the_sweeper(pg_db: str) -> None:
    """The process stops after the last outcome's statement, before the completion."""
    store = Store.from_url(pg_db)
    try:
        parent, plan = make_plan(duration_seconds=60, interval_seconds=60, qty=5)
        await store.create_parent(parent, plan, NOW)
        claimed = await store.claim(parent.parent_order_id, 0, NOW)
        assert claimed is not None
        async with store._single.begin() as conn:
            updated, last = await outcomes.finish_alone(conn, parent, claimed[1],
                Outcome(SliceStatus.REJECTED, 1, reason="refused"), NOW
            )
        assert updated is not None and last
        found = await store.get_parent(parent.parent_order_id)
        assert found is not None and found.status is ParentStatus.ACTIVE
        assert await store.complete_closed_parents(NOW) == 1
        found = await store.get_parent(parent.parent_order_id)
        assert found is not None and found.status is ParentStatus.COMPLETED
        assert await store.complete_closed_parents(NOW) == 0
        types = [m.type for _, m in await store.outbox_fetch(100)]
        assert types == ["slice.rejected", "parent.completed"]
    finally:
        await store.close()
