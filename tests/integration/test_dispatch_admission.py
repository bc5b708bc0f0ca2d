"""Many slices due at once on a tiny pool: bounded in flight, no pool timeout, every one ends."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from twap_schemas import RequestContext, SubmitRequest, parse_request
from twap_schemas.common import SliceStatus
from worker.brokers.base import OrderRequest
from worker.brokers.sim import SimBroker
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord, SwitchState
from worker.observability.metrics import WorkerMetrics
from worker.runtime.admission import AdmissionGate
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.runtime.recovery import settle_orphans
from worker.runtime.scheduling import SliceScheduler
from worker.settings import Settings
from worker.store.repository import Store

POOL = 2
PARENTS, SLICES = 40, 10  # 400 slices, every one already due when they fire together


class CountingStore(Store):
    """The real store, counting slices between their claim and their outcome."""

    in_flight = 0
    peak = 0

    async def claim(self, parent_id: str, slice_num: int, now: datetime
                    ) -> tuple[ParentRecord, SliceRecord, SwitchState] | None:
        claimed = await super().claim(parent_id, slice_num, now)
        if claimed is not None:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        return claimed

    async def finish(self, *args: object, **kwargs: object) -> SliceRecord | None:
        try:
            return await super().finish(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            self.in_flight -= 1


@pytest.fixture
async def tiny_store(database_url: str, db_kind: str) -> AsyncIterator[CountingStore]:
    if db_kind == "postgresql":
        # Two connections, no overflow, a pool that gives up after 1 s: a claim storm on it
        # times out unless the executor keeps the work in flight near the pool's size.
        engine = create_async_engine(database_url, pool_size=POOL, max_overflow=0,
                                     pool_timeout=1.0)
        store = CountingStore(engine)
    else:
        store = CountingStore(Store.from_url(database_url, pool_size=POOL).engine)  # one conn.
    yield store
    await store.close()


async def due_parents(store: Store, start: datetime, count: int = PARENTS
                      ) -> list[tuple[ParentRecord, list[SliceRecord]]]:
    made = []
    for i in range(count):
        body = {"type": "submit", "strategy_id": f"s{i}", "symbol": "AAPL", "side": "buy",
                "qty": SLICES, "duration_seconds": SLICES, "interval_seconds": 1,
                "start_at": start.isoformat()}
        req = parse_request(json.dumps(body).encode(), RequestContext(now=start))
        assert isinstance(req, SubmitRequest)
        parent, plan = build_plan(req, now=start)
        await store.create_parent(parent, plan, start)
        made.append((parent, plan))
    return made


async def test_a_burst_on_a_tiny_pool_stays_bounded_and_every_slice_ends(
    tiny_store: CountingStore, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """400 slices due at once, pool of 2: at most pool + broker slots in flight, no pool
    timeout or other error, every slice submitted once."""
    start = datetime.now(UTC) - timedelta(seconds=SLICES)
    made = await due_parents(tiny_store, start)
    limit = Settings(database_url=SecretStr(database_url), db_pool_size=POOL).in_flight_limit
    # Answers take a moment, as a real broker's do: without a bound every slice would be
    # claimed and waiting for its answer at once.
    broker, metrics = SimBroker(latency=0.002), WorkerMetrics()
    executor = SliceExecutor(tiny_store, broker, ExecutionPolicy(grace=timedelta(seconds=60)),
                             lambda: datetime.now(UTC), metrics=metrics,
                             gate=AdmissionGate(limit))
    with caplog.at_level(logging.WARNING):
        await asyncio.gather(*(executor.run(p.parent_order_id, r.slice_num, r.scheduled_time)
                               for p, plan in made for r in plan))
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == []
    assert metrics.registry.get_sample_value("twap_errors_total") is None  # no series at all
    assert tiny_store.peak <= limit
    statuses = [r.status for p, _ in made for r in await tiny_store.get_slices(p.parent_order_id)]
    assert statuses == [SliceStatus.FILLED] * (PARENTS * SLICES)
    assert len(broker.orders) == broker.attempts == PARENTS * SLICES


async def test_slices_whose_grace_runs_out_at_the_gate_end_expired_with_a_reason(
    store: Store
) -> None:
    """A slot held past their grace: the waiting slices are never claimed nor sent, and end
    `expired` with their event and the reason, through the store's batch expiry."""
    start = datetime.now(UTC) - timedelta(seconds=SLICES)
    ((parent, plan),) = await due_parents(store, start, 1)
    broker, metrics = SimBroker(), WorkerMetrics()
    gate = AdmissionGate(1)
    # Slice 0 was due 10 s ago: it has half a second left to wait, the next ones a second more.
    grace = timedelta(seconds=SLICES + 0.5)
    executor = SliceExecutor(store, broker, ExecutionPolicy(grace=grace),
                             lambda: datetime.now(UTC), metrics=metrics, gate=gate)
    assert await gate.acquire(start)  # something else holds the only slot meanwhile
    tasks = [asyncio.create_task(executor.run(parent.parent_order_id, r.slice_num,
                                              r.scheduled_time)) for r in plan]
    await tasks[0]  # it gives up at the gate once its grace has run out
    gate.release()
    await asyncio.gather(*tasks[1:])
    await executor.drain()
    rows = await store.get_slices(parent.parent_order_id)
    assert rows[0].status is SliceStatus.EXPIRED and "grace" in (rows[0].reason or "")
    assert rows[0].client_order_id not in broker.orders
    assert all(r.status is SliceStatus.FILLED for r in rows[2:])
    assert (metrics.registry.get_sample_value("twap_slices_expired_waiting_total") or 0) >= 1
    events = [m for _, m in await store.outbox_fetch(100) if m.type == "slice.expired"]
    assert len(events) == sum(r.status is SliceStatus.EXPIRED for r in rows)


async def test_one_sweep_settles_a_burst_of_orphans_through_the_gate(store: Store) -> None:
    """150 slices left `submitting` (sent, outcome never written): one sweeper pass settles
    them all, a few at a time, each found at the broker and recorded once."""
    start = datetime.now(UTC) - timedelta(seconds=SLICES)
    made = await due_parents(store, start, 15)
    broker = SimBroker()
    for parent, plan in made:
        for r in plan:
            assert await store.claim(parent.parent_order_id, r.slice_num, start) is not None
            await broker.submit(OrderRequest(r.client_order_id, "AAPL", parent.side, r.qty))
    gate = AdmissionGate(3)
    executor = SliceExecutor(store, broker, ExecutionPolicy(grace=timedelta(seconds=60)),
                             lambda: datetime.now(UTC), gate=gate)
    scheduler = SliceScheduler(executor.fire, lambda: datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert await settle_orphans(store, executor, scheduler, now=later,
                                older_than=timedelta(seconds=10)) == 150
    await scheduler.shutdown(60)
    rows = [r for p, _ in made for r in await store.get_slices(p.parent_order_id)]
    assert [r.status for r in rows] == [SliceStatus.FILLED] * 150
    assert broker.attempts == 150 and gate.in_use == 0
