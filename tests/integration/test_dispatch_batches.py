"""Coalesced dispatch (worker.runtime.batching through SliceExecutor) on SQLite and PostgreSQL:
slices firing together are claimed by one statement, and every per-slice guarantee holds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import pytest

from twap_schemas.common import SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.brokers.sim import SimBroker
from worker.core.planning import build_plan
from worker.core.records import ParentRecord
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.runtime.ports import Claimed, SliceKey
from worker.store.engine import make_engine
from worker.store.repository import Store
from worker.store.switches import KILL_SWITCH

pytestmark = pytest.mark.integration

TRIALS = 10
T = TypeVar("T")
SLICES = 8


class RecordingStore(Store):
    """The database store, recording how many keys each claim statement it runs takes."""

    def __init__(self, url: str) -> None:
        super().__init__(make_engine(url))
        self.claim_groups: list[int] = []

    async def claim(self, parent_id: str, slice_num: int, now: datetime) -> Claimed | None:
        self.claim_groups.append(1)
        return await super().claim(parent_id, slice_num, now)

    async def claim_many(self, keys: list[SliceKey], now: datetime) -> dict[SliceKey, Claimed]:
        self.claim_groups.append(len(keys))
        return await super().claim_many(keys, now)


async def _parent(store: Store, slices: int) -> ParentRecord:
    now = datetime.now(UTC)
    request = SubmitRequest(
        type="submit", strategy_id="batch", symbol="AAPL", side="buy", qty=slices,
        duration_seconds=slices, interval_seconds=1, request_id=uuid.uuid4().hex,
    )
    parent, records = build_plan(request, now=now)
    await store.create_parent(parent, records, now)
    return parent


async def _after(seconds: float, work: Awaitable[T]) -> T:
    """`work` started a little late: the race lands at different points of a claim."""
    await asyncio.sleep(seconds)
    return await work


async def test_a_claim_group_racing_a_cancel_never_sends_a_canceled_slice(
    database_url: str,
) -> None:
    """Every slice of a parent fired in the same moment (one claim statement for all) while
    the parent is canceled, 10 times, the cancel started 0-4 ms late so that it lands before,
    during and after the claim statement: each slice ends either sent (filled at once by the sim market) and at the broker,
    or canceled and never sent."""
    store = RecordingStore(database_url)
    broker = SimBroker(latency=0.001)
    executor = SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0),
                             lambda: datetime.now(UTC))
    seen = {SliceStatus.FILLED: 0, SliceStatus.CANCELED: 0}
    try:
        for trial in range(TRIALS):
            parent = await _parent(store, SLICES)
            pid = parent.parent_order_id
            store.claim_groups.clear()
            fire = asyncio.gather(*(executor.run(pid, n, datetime.now(UTC))
                                    for n in range(SLICES)))
            cancel = _after(trial // 2 * 0.001, store.cancel(pid, "race", datetime.now(UTC)))
            if trial % 2:
                await asyncio.gather(fire, cancel)
            else:
                await asyncio.gather(cancel, fire)
            assert store.claim_groups == [SLICES], store.claim_groups  # one statement
            for row in await store.get_slices(pid):
                assert row.status in seen, (trial, row.slice_num, row.status)
                at_broker = row.client_order_id in broker.orders
                assert at_broker == (row.status is SliceStatus.FILLED), (trial, row)
                seen[row.status] += 1
    finally:
        await store.close()
    assert sum(seen.values()) == TRIALS * SLICES


async def test_a_kill_switch_engaged_between_two_claim_groups_sends_nothing_of_the_second(
    database_url: str,
) -> None:
    """Four slices fired together, then the kill switch engaged, then four more fired
    together: two claim statements; the first group went out on what its statement read
    (no pre-send read within guard_fresh), the second group's statement read the switch and
    nothing of it was sent."""
    store = RecordingStore(database_url)
    broker = SimBroker()
    executor = SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0, guard_fresh=60.0),
                             lambda: datetime.now(UTC))
    try:
        parent = await _parent(store, 8)
        pid = parent.parent_order_id
        now = datetime.now(UTC)
        await asyncio.gather(*(executor.run(pid, n, now) for n in range(4)))
        assert await store.set_switch(KILL_SWITCH, True, now, reason="halt", operator="ops")
        await asyncio.gather(*(executor.run(pid, n, now) for n in range(4, 8)))
        assert store.claim_groups == [4, 4]
        rows = await store.get_slices(pid)
        assert [r.status for r in rows] == (
            [SliceStatus.FILLED] * 4 + [SliceStatus.BLOCKED_KILL_SWITCH] * 4)
        assert sorted(broker.orders) == sorted(r.client_order_id for r in rows[:4])
        assert [r.reason for r in rows[4:]] == ["halt"] * 4
    finally:
        await store.close()
