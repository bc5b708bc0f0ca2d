"""The per-slice store path (claim, finish, completion, breaker count) on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, update

from twap_schemas.common import ParentStatus, SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.brokers.orders import Lifecycle, OrderView
from worker.core.outcomes import Outcome
from worker.core.planning import build_plan
from worker.core.records import ParentRecord
from worker.store.repository import Store
from worker.store.tables import switches

pytestmark = pytest.mark.integration


async def _parent(store: Store, slices: int = 2) -> ParentRecord:
    now = datetime.now(UTC)
    request = SubmitRequest(
        type="submit",
        strategy_id="s",
        symbol="msft",
        side="sell",
        qty=10 * slices,
        duration_seconds=slices,
        interval_seconds=1,
        order_type="limit",
        limit_price="101.25",
        request_id=uuid.uuid4().hex,
    )
    parent, records = build_plan(request, now=now)
    await store.create_parent(parent, records, now)
    return parent


async def _types(store: Store) -> list[str | None]:
    return [m.type for _, m in await store.outbox_fetch(1000)]


async def test_claim_returns_the_parent_and_switches_once(store: Store) -> None:
    """A claim marks the slice submitting and returns its parent and both switches; a second
    claim of the same slice gets nothing."""
    parent = await _parent(store)
    claimed = await store.claim(parent.parent_order_id, 1, datetime.now(UTC))
    assert claimed is not None
    got, record, sw = claimed
    assert got == parent
    assert (record.slice_num, record.status, record.qty) == (1, SliceStatus.SUBMITTING, 10)
    assert not sw.kill_switch_engaged and not sw.breaker_tripped
    assert await store.claim(parent.parent_order_id, 1, datetime.now(UTC)) is None


async def test_claim_fails_closed_without_switch_rows(store: Store) -> None:
    """With the switch rows gone, the claimed slice sees both switches engaged."""
    parent = await _parent(store)
    async with store.transaction() as conn:
        await conn.execute(delete(switches))
    claimed = await store.claim(parent.parent_order_id, 0, datetime.now(UTC))
    assert claimed is not None
    assert claimed[2].kill_switch_engaged and claimed[2].breaker_tripped


async def test_finish_is_a_compare_and_set(store: Store) -> None:
    """A second finish from the same claimed record changes nothing and writes no event."""
    parent = await _parent(store)
    claimed = await store.claim(parent.parent_order_id, 0, datetime.now(UTC))
    assert claimed is not None
    p, record, _ = claimed
    now = datetime.now(UTC)
    done = await store.finish(p, record,
        Outcome(SliceStatus.SUBMITTED, 1, broker_order_id="b-1", sent_at=now),
        now, max_failures=5
    )
    assert done is not None and done.broker_order_id == "b-1"
    again = await store.finish(p, record,
        Outcome(SliceStatus.FAILED, 2, reason="late"),
        now, max_failures=5
    )
    assert again is None
    assert await _types(store) == ["slice.submitted"]
    slices = await store.get_slices(parent.parent_order_id)
    assert (slices[0].status, slices[0].broker_order_id, slices[0].attempts) == (
        SliceStatus.SUBMITTED,
        "b-1",
        1,
    )


async def test_last_finish_completes_and_success_resets_the_failure_count(store: Store) -> None:
    """Both slices submitted: the failure count is back to 0; the parent completes once both
    orders ended at the broker (one filled, one closed: a close is no failure), its event after
    the slice events."""
    parent = await _parent(store)
    async with store.transaction() as conn:
        await conn.execute(
            update(switches).where(switches.c.name == "breaker").values(consecutive_failures=3)
        )
    for num in (0, 1):
        claimed = await store.claim(parent.parent_order_id, num, datetime.now(UTC))
        assert claimed is not None
        now = datetime.now(UTC)
        await store.finish(claimed[0], claimed[1],
            Outcome(SliceStatus.SUBMITTED, 1, broker_order_id=f"b-{num}", sent_at=now),
            now, max_failures=5
        )
    assert (await store.switches()).consecutive_failures == 0
    found = await store.get_parent(parent.parent_order_id)
    assert found is not None and found.status is ParentStatus.ACTIVE
    records = await store.get_slices(parent.parent_order_id)
    now = datetime.now(UTC)
    await store.apply_view(OrderView(records[0].client_order_id, "b-0", Lifecycle.FILLED,
                                     records[0].qty, Decimal("5"), now), now)
    await store.apply_view(OrderView(records[1].client_order_id, "b-1", Lifecycle.CLOSED, 0,
                                     None, now, "expired at the broker"), now)
    assert (await store.switches()).consecutive_failures == 0
    found = await store.get_parent(parent.parent_order_id)
    assert found is not None and found.status is ParentStatus.COMPLETED
    assert await _types(store) == ["slice.submitted", "slice.submitted", "slice.fill",
                                   "slice.filled", "slice.closed", "parent.completed"]


async def test_failed_slices_trip_the_breaker(store: Store) -> None:
    """Two failed slices with max_failures=2 trip the breaker, with its event."""
    parent = await _parent(store)
    for num in (0, 1):
        claimed = await store.claim(parent.parent_order_id, num, datetime.now(UTC))
        assert claimed is not None
        await store.finish(claimed[0], claimed[1],
            Outcome(SliceStatus.FAILED, 3, reason="503"),
            datetime.now(UTC), max_failures=2
        )
    sw = await store.switches()
    assert sw.breaker_tripped and sw.consecutive_failures == 2
    types = await _types(store)
    assert types.count("slice.failed") == 2 and "control.breaker.tripped" in types
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(select(switches.c.automatic).where(switches.c.name == "breaker"))
        ).one()
    assert row.automatic


async def test_guard_state_reads_parent_slice_and_switches_as_they_are_now(store: Store) -> None:
    """The pre-send read sees a cancel and both switches committed after the claim, and the
    slice's own status; an unknown slice reads as None."""
    parent = await _parent(store)
    now = datetime.now(UTC)
    assert await store.claim(parent.parent_order_id, 0, now) is not None
    state = await store.guard_state(parent.parent_order_id, 0)
    assert state is not None
    assert (state.parent_status, state.slice_status) == (ParentStatus.ACTIVE,
                                                         SliceStatus.SUBMITTING)
    assert not state.switches.kill_switch_engaged and not state.switches.breaker_tripped

    await store.set_switch("kill_switch", True, now, reason="halt", operator="t")
    await store.set_switch("breaker", True, now, reason="trip", operator="t")
    await store.cancel(parent.parent_order_id, "desk", now)
    state = await store.guard_state(parent.parent_order_id, 0)
    assert state is not None and state.parent_status is ParentStatus.CANCELED
    assert (state.switches.kill_switch_reason, state.switches.breaker_reason) == ("halt", "trip")
    assert state.switches.kill_switch_engaged and state.switches.breaker_tripped
    slice_one = await store.guard_state(parent.parent_order_id, 1)
    assert slice_one is not None and slice_one.slice_status is SliceStatus.CANCELED
    assert await store.guard_state(parent.parent_order_id, 9) is None


async def test_guard_state_fails_closed_without_switch_rows(store: Store) -> None:
    """With the switch rows gone, the pre-send read sees both switches engaged."""
    parent = await _parent(store)
    async with store.transaction() as conn:
        await conn.execute(delete(switches))
    state = await store.guard_state(parent.parent_order_id, 0)
    assert state is not None
    assert state.switches.kill_switch_engaged and state.switches.breaker_tripped


async def test_note_claimed_writes_a_reason_only_on_a_submitting_slice(store: Store) -> None:
    """A note lands on a claimed slice, keeps it submitting, and never touches another status."""
    parent = await _parent(store)
    now = datetime.now(UTC)
    assert await store.claim(parent.parent_order_id, 0, now) is not None
    assert await store.note_claimed(parent.parent_order_id, 0, "lookup failed", now)
    assert not await store.note_claimed(parent.parent_order_id, 1, "lookup failed", now)
    first, second = await store.get_slices(parent.parent_order_id)
    assert (first.status, first.reason) == (SliceStatus.SUBMITTING, "lookup failed")
    assert (second.status, second.reason) == (SliceStatus.SCHEDULED, None)


async def test_claimed_slices_untouched_since_leaves_recent_claims_out(store: Store) -> None:
    """The sweeper's read returns claims older than the bound, not fresher ones."""
    parent = await _parent(store)
    now = datetime.now(UTC)
    assert await store.claim(parent.parent_order_id, 0, now - timedelta(seconds=60))
    assert await store.claim(parent.parent_order_id, 1, now)
    old = await store.claimed_slices(untouched_since=now - timedelta(seconds=10))
    assert [(r.slice_num, p.parent_order_id) for p, r in old] == [(0, parent.parent_order_id)]
    assert len(await store.claimed_slices()) == 2
