"""A parent completes even when its last two slices end in concurrent transactions."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text

from twap_schemas.common import ParentStatus, SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.brokers.orders import Lifecycle, OrderView
from worker.core.outcomes import Outcome
from worker.core.planning import build_plan
from worker.store import fills
from worker.store.repository import Store

pytestmark = pytest.mark.integration


async def _until_a_lock_waits(store: Store) -> None:
    """PostgreSQL has no notification for a blocked lock: poll pg_locks (10 s at most)."""
    for _ in range(1000):
        async with store.engine.connect() as conn:
            waiting = (
                await conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
            ).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second transaction never waited for the first")


async def test_concurrent_last_slices_complete_the_parent(pg_db: str) -> None:
    """Slices 0 and 1 end (their orders filled) in overlapping transactions: the later one
    completes the parent."""
    store = Store.from_url(pg_db)
    try:
        now = datetime.now(UTC)
        request = SubmitRequest(
            type="submit",
            strategy_id="s",
            symbol="AAPL",
            side="buy",
            qty=2,
            duration_seconds=2,
            interval_seconds=1,
            request_id=uuid.uuid4().hex,
        )
        parent, slices = build_plan(request, now=now)
        await store.create_parent(parent, slices, now)
        claimed = [await store.claim(parent.parent_order_id, n, now) for n in (0, 1)]
        assert all(c is not None for c in claimed)
        (p0, r0, _), (p1, r1, _) = claimed  # type: ignore[misc]
        for p, r in ((p0, r0), (p1, r1)):
            await store.finish(p, r, Outcome(SliceStatus.SUBMITTED, 1, broker_order_id="b"),
                               now, max_failures=5)
        async with store.transaction() as conn:
            await fills.apply_view(conn, OrderView(r0.client_order_id, "b", Lifecycle.FILLED, 1,
                                                   Decimal(1), now), now)
            second = asyncio.create_task(store.apply_view(
                OrderView(r1.client_order_id, "b", Lifecycle.FILLED, 1, Decimal(1), now), now))
            await _until_a_lock_waits(store)  # the second waits behind the first
        assert (await asyncio.wait_for(second, 10)).ended is SliceStatus.FILLED
        found = await store.get_parent(parent.parent_order_id)
        assert found is not None and found.status is ParentStatus.COMPLETED
    finally:
        await store.close()
