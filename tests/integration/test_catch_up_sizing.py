"""Catch-up sizing under concurrency, on SQLite and PostgreSQL: two late slices of one parent
sized at the same moment never both catch up the same shortfall (the parent would send more
than its qty)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from twap_schemas.common import SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.core.catchup import slice_qty
from worker.core.outcomes import Outcome
from worker.core.planning import build_plan
from worker.core.records import ParentRecord
from worker.store.engine import make_engine
from worker.store.repository import Store

pytestmark = pytest.mark.integration

TRIALS = 10
PLANNED = [10, 10, 10]


async def _behind_by_one_slice(store: Store) -> ParentRecord:
    """30 shares in 3 slices of 10; slice 0 ended without executing (expired in an outage);
    slices 1 and 2 claimed, both about to be sized."""
    now = datetime.now(UTC)
    request = SubmitRequest(
        type="submit", strategy_id="catchup", symbol="AAPL", side="buy", qty=30,
        duration_seconds=3, interval_seconds=1, request_id=uuid.uuid4().hex,
    )
    parent, records = build_plan(request, now=now)
    await store.create_parent(parent, records, now)
    claimed = await store.claim(parent.parent_order_id, 0, now)
    assert claimed is not None
    p, r, _ = claimed
    await store.finish(p, r, Outcome(SliceStatus.EXPIRED, 0, reason="outage"), now,
                       max_failures=5)
    for num in (1, 2):
        assert await store.claim(parent.parent_order_id, num, now) is not None
    return parent


def _rule(num: int):  # type: ignore[no-untyped-def]
    def size(filled: int, working: int) -> int:
        return slice_qty(PLANNED, num, total_qty=30, filled_qty=filled, working_qty=working,
                         catch_up=True, max_ratio=Decimal(2))
    return size


async def test_two_slices_sized_at_once_send_the_parents_qty_and_no_more(
    database_url: str,
) -> None:
    """Sized concurrently, 10 times: the shortfall of 10 is caught up by exactly one of the
    two (10 + 20 in some order), never by both (20 + 20 = 40 of 30)."""
    store = Store(make_engine(database_url))
    try:
        for _ in range(TRIALS):
            parent = await _behind_by_one_slice(store)
            pid = parent.parent_order_id
            now = datetime.now(UTC)
            sizes = await asyncio.gather(
                store.size_claimed(pid, 1, _rule(1), 10, now),
                store.size_claimed(pid, 2, _rule(2), 10, now),
            )
            assert sorted(s or 0 for s in sizes) == [10, 20], sizes
            rows = {r.slice_num: r for r in await store.get_slices(pid)}
            assert [rows[1].qty, rows[2].qty] == sizes
            assert sum(r.qty for r in rows.values() if r.slice_num) == 30
    finally:
        await store.close()


async def test_sizing_a_slice_no_longer_submitting_writes_nothing(database_url: str) -> None:
    """A slice settled elsewhere (here: failed) between its claim and its sizing is left as
    it is: None, and its qty unchanged."""
    store = Store(make_engine(database_url))
    try:
        parent = await _behind_by_one_slice(store)
        pid = parent.parent_order_id
        now = datetime.now(UTC)
        claimed = next(r for r in await store.get_slices(pid) if r.slice_num == 1)
        await store.finish(parent, claimed, Outcome(SliceStatus.FAILED, 1, reason="gone"), now,
                           max_failures=5)
        assert await store.size_claimed(pid, 1, _rule(1), 10, now) is None
        rows = {r.slice_num: r for r in await store.get_slices(pid)}
        assert (rows[1].status, rows[1].qty) == (SliceStatus.FAILED, 10)
    finally:
        await store.close()


async def test_a_slice_of_a_parent_canceled_after_its_claim_keeps_its_planned_qty(
    database_url: str,
) -> None:
    """The parent is canceled between the claim and the sizing: its canceled slices are not a
    shortfall to catch up, so the slice keeps its 10 (the pre-send guard then stops it)."""
    store = Store(make_engine(database_url))
    try:
        parent = await _behind_by_one_slice(store)
        pid = parent.parent_order_id
        now = datetime.now(UTC)
        await store.cancel(pid, "desk", now)
        assert await store.size_claimed(pid, 2, _rule(2), 10, now) == 10
        rows = {r.slice_num: r for r in await store.get_slices(pid)}
        assert (rows[2].status, rows[2].qty) == (SliceStatus.SUBMITTING, 10)
    finally:
        await store.close()
