"""A lookup the broker cannot answer never settles a slice on a guess: the slice stays
`submitting` (counted, noted, logged) and is looked up again until the broker answers. Nor does
a guard read that meets a passing database outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.alpaca_settings import standin_settings
from tests.support.alpaca_standin import AlpacaStandIn, Fault
from tests.support.plans import stored_parent
from tests.support.tcp_proxy import TcpProxy
from twap_schemas.common import SliceStatus
from worker.brokers.alpaca import AlpacaBroker
from worker.brokers.base import OrderRequest
from worker.brokers.factory import build_broker
from worker.brokers.sim import SimBroker
from worker.core.records import ParentRecord, SliceRecord
from worker.observability.metrics import WorkerMetrics
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.store.repository import Store

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ORDERS = "/v2/orders"
UNRESOLVED = "twap_slices_unresolved"


@pytest.fixture
async def broker(alpaca_standin: AlpacaStandIn) -> AsyncIterator[AlpacaBroker]:
    built = build_broker(standin_settings(alpaca_standin))
    assert isinstance(built, AlpacaBroker)
    yield built
    await built.close()


def executor(store: Store, broker: AlpacaBroker, *, attempts: int = 3) -> SliceExecutor:
    policy = ExecutionPolicy(attempts=attempts, first_wait=0.01, wait_cap=0.05,
                             grace=timedelta(seconds=60))
    return SliceExecutor(store, broker, policy, lambda: datetime.now(UTC),
                         metrics=WorkerMetrics())


def unresolved(ex: SliceExecutor) -> float:
    return ex.metrics.registry.get_sample_value(UNRESOLVED) or 0.0


async def book(broker: AlpacaBroker, parent: ParentRecord, record: SliceRecord) -> str:
    """Place the slice's order at the broker as an earlier life of the worker would have."""
    placed = await broker.submit(
        OrderRequest(record.client_order_id, parent.symbol, parent.side, record.qty))
    return placed.broker_order_id


async def test_duplicate_then_failing_lookup_ends_submitted_and_run_does_not_raise(
    store: Store, broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """422 'must be unique', then two failed lookups: run() returns, the slice is submitted
    with the order the broker already had, no second order."""
    parent, (record,) = await stored_parent(store, datetime.now(UTC))
    existing = await book(broker, parent, record)
    alpaca_standin.fail_next(Fault.http(503, "down", method="GET"),
                             Fault.http(503, "down", method="GET"))
    ex = executor(store, broker)
    await ex.run(parent.parent_order_id, 0, record.scheduled_time)

    (row,) = await store.get_slices(parent.parent_order_id)
    assert row.status is SliceStatus.FILLED and row.broker_order_id == existing
    assert alpaca_standin.count("GET") == 3
    assert len(alpaca_standin.orders_for(record.client_order_id)) == 1
    assert unresolved(ex) == 0


async def test_resume_with_a_failing_lookup_stays_submitting_until_the_broker_answers(
    store: Store, broker: AlpacaBroker, alpaca_standin: AlpacaStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a restart the lookup fails: the slice stays submitting with a reason, the gauge
    counts it, each failure is logged; once the broker answers it is submitted, never failed."""
    caplog.set_level(logging.WARNING, logger="worker.runtime.execution")
    parent, (record,) = await stored_parent(store, datetime.now(UTC))
    existing = await book(broker, parent, record)
    assert await store.claim(parent.parent_order_id, 0, datetime.now(UTC)) is not None
    alpaca_standin.fail_next(*[Fault.http(503, "down", method="GET")] * 100)
    ex = executor(store, broker)
    ((p, claimed),) = await store.claimed_slices()
    resuming = asyncio.create_task(ex.resume(p, claimed))

    assert await asyncio.to_thread(alpaca_standin.wait_for_requests, 3, "GET") >= 3
    (row,) = await store.get_slices(parent.parent_order_id)
    assert row.status is SliceStatus.SUBMITTING
    assert row.reason is not None and "lookup failed" in row.reason and "503" in row.reason
    assert unresolved(ex) == 1
    assert not resuming.done()

    alpaca_standin.clear_faults()
    await asyncio.wait_for(resuming, 10)
    (row,) = await store.get_slices(parent.parent_order_id)
    assert row.status is SliceStatus.FILLED and row.broker_order_id == existing
    assert row.reason is None
    assert unresolved(ex) == 0
    assert sum(r.getMessage() == "slice.lookup_unresolved" for r in caplog.records) >= 3
    assert (await store.switches()).consecutive_failures == 0


async def test_resume_with_a_failing_lookup_sends_only_after_a_definite_not_found(
    store: Store, broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """The order is not at the broker and the first lookups fail: it is sent once, after the
    broker said it does not have it."""
    parent, (record,) = await stored_parent(store, datetime.now(UTC))
    assert await store.claim(parent.parent_order_id, 0, datetime.now(UTC)) is not None
    alpaca_standin.fail_next(Fault.http(503, "down", method="GET"),
                             Fault.html(404, method="GET"))
    ex = executor(store, broker)
    ((p, claimed),) = await store.claimed_slices()
    await ex.resume(p, claimed)
    (row,) = await store.get_slices(parent.parent_order_id)
    assert row.status is SliceStatus.FILLED
    assert [s.method for s in alpaca_standin.requests] == ["GET", "GET", "GET", "POST"]
    assert len(alpaca_standin.orders_for(record.client_order_id)) == 1


async def test_exhausted_retries_with_failing_lookups_do_not_fail_a_booked_order(
    store: Store, broker: AlpacaBroker, alpaca_standin: AlpacaStandIn
) -> None:
    """Booked but answered too late, then the lookups fail past the last attempt: the slice
    is submitted once the broker answers, not failed, and the breaker counts nothing."""
    parent, (record,) = await stored_parent(store, datetime.now(UTC))
    alpaca_standin.fail_next(Fault.late(1.0, method="POST"),
                             Fault.http(503, "down", method="GET"),
                             Fault.http(503, "down", method="GET"))
    ex = executor(store, broker, attempts=2)
    await ex.run(parent.parent_order_id, 0, record.scheduled_time)
    (row,) = await store.get_slices(parent.parent_order_id)
    booked = alpaca_standin.orders_for(record.client_order_id)
    assert row.status is SliceStatus.FILLED, (row.status, row.reason)
    assert [o["id"] for o in booked] == [row.broker_order_id]
    assert alpaca_standin.count("POST", ORDERS) == 1
    assert (await store.switches()).consecutive_failures == 0


class _Seen(logging.Handler):
    """Sets `event` when a log record with this message and `what` arrives."""

    def __init__(self, message: str, what: str) -> None:
        super().__init__()
        self.message, self.what = message, what
        self.event = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message and getattr(record, "what", None) == self.what:
            self.loop.call_soon_threadsafe(self.event.set)


async def test_guard_read_rides_out_a_database_outage_before_the_send(pg_db: str) -> None:
    """The pre-send guard read meets a database outage: it is retried like a claim, and once
    the database is back the slice is sent, once; not blocked on a passing outage."""
    proxy = TcpProxy.for_url(pg_db, 5432)
    await proxy.start()
    store = Store.from_url(proxy.url(pg_db))
    seen = _Seen("db.retry", "guard")
    logging.getLogger("worker.runtime.dbretry").addHandler(seen)
    try:
        parent, (record,) = await stored_parent(store, datetime.now(UTC))
        assert await store.claim(parent.parent_order_id, 0, datetime.now(UTC)) is not None
        ((p, claimed),) = await store.claimed_slices()
        broker = SimBroker()
        ex = SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.01, wait_cap=0.05),
                           lambda: datetime.now(UTC))
        await proxy.cut()
        resuming = asyncio.create_task(ex.resume(p, claimed))
        await asyncio.wait_for(seen.event.wait(), 10)
        assert not broker.orders
        await proxy.resume()
        await asyncio.wait_for(resuming, 20)
        (row,) = await store.get_slices(parent.parent_order_id)
        assert row.status is SliceStatus.FILLED, (row.status, row.reason)
        assert list(broker.orders) == [record.client_order_id] and broker.attempts == 1
    finally:
        logging.getLogger("worker.runtime.dbretry").removeHandler(seen)
        await store.close()
        await proxy.close()
