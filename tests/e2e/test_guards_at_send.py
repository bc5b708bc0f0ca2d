"""A running worker re-checks its guards right before each send, and settles slices left
`submitting` without a restart."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy.exc import OperationalError

from tests.support.alpaca_settings import standin_broker_fields
from tests.support.alpaca_standin import AlpacaStandIn
from tests.support.harness import Harness, submit_body, worker_settings
from tests.support.plans import stored_parent
from worker.brokers.base import OrderRequest
from worker.brokers.factory import build_broker
from worker.brokers.sim import SimBroker
from worker.store.repository import Store

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = pytest.mark.timeout(60)

PARENTS = 5
BURST = 3  # a tenth of 30 per minute; then one call every 2.2 s


@pytest.fixture
async def throttled(
    amqp_url: str, database_url: str, namespace: str, alpaca_standin: AlpacaStandIn
) -> AsyncIterator[Harness]:
    """A worker on Alpaca (the stand-in) limited to 30 broker calls a minute."""
    settings = worker_settings(amqp_url, database_url, namespace, **standin_broker_fields(
        alpaca_standin, broker_rate_limit_per_minute=30))
    h = Harness(settings, broker=build_broker(settings))
    await h.open()
    yield h
    await h.close()


async def test_kill_switch_stops_orders_queued_in_the_rate_limiter(
    throttled: Harness, alpaca_standin: AlpacaStandIn
) -> None:
    """Five slices due at once, three go in the limiter's burst; the kill switch engaged then
    stops the two still waiting for their turn: they end blocked, never reach the broker."""
    h = throttled
    await h.start_worker()
    start = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    cids = [await h.publish(submit_body(qty=5, duration_seconds=1, start_at=start), reply=True)
            for _ in range(PARENTS)]
    pids = {(await h.reply_for(cid))["parent_order_id"] for cid in cids}
    await h.events.wait_for(lambda: len(h.events.of("slice.submitted")) >= BURST)
    await h.control("kill_switch.engage", "desk halt")
    await h.events.wait_for(lambda: h.events.of("control.kill_switch.engaged"))
    await h.events.wait_for(lambda: len(h.events.of("parent.completed")) == PARENTS)

    submitted = h.events.of("slice.submitted")
    blocked = h.events.of("slice.blocked_kill_switch")
    assert {e["parent_order_id"] for e in submitted + blocked} == pids
    assert (len(submitted), len(blocked)) == (BURST, PARENTS - BURST)
    assert all(e["reason"] == "desk halt" for e in blocked)
    assert alpaca_standin.count("POST", "/v2/orders") == BURST, "orders sent after the engage"


T = TypeVar("T")


async def while_locked(write: Callable[[], Awaitable[T]]) -> T:
    """The test's own writes beside a running worker: on SQLite the worker may hold the write
    lock past the short busy timeout (a loaded machine); each write is atomic, so try again.
    The lock can surface raw from sqlite3 (BEGIN IMMEDIATE on the inline connection)."""
    for _ in range(100):
        try:
            return await write()
        except (OperationalError, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc):
                raise
            await asyncio.sleep(0.05)
    return await write()


async def test_sweeper_settles_slices_left_submitting_without_a_restart(
    harness: Harness, database_url: str
) -> None:
    """Two slices claimed long ago and never settled (one is at the broker, one is not): the
    running worker's sweeper (every TWAP_SWEEP_SECONDS, 0.5 s here) looks them up; the first
    becomes submitted with its order, the second is sent once; both parents complete."""
    loop = asyncio.get_running_loop()
    await harness.start_worker(sweep_seconds=0.5)
    started = loop.time()
    broker = harness.broker
    assert isinstance(broker, SimBroker)
    store = Store.from_url(database_url)
    try:
        now = datetime.now(UTC)
        due = now - timedelta(seconds=5)
        booked_parent, (booked,) = await while_locked(lambda: stored_parent(store, due))
        lost_parent, (lost,) = await while_locked(lambda: stored_parent(store, due))
        for parent in (booked_parent, lost_parent):
            pid = parent.parent_order_id
            assert await while_locked(
                lambda pid=pid: store.claim(pid, 0, now - timedelta(seconds=30)))
    finally:
        await store.close()
    existing = await broker.submit(OrderRequest(booked.client_order_id, "AAPL",
                                                booked_parent.side, booked.qty))

    pids = {booked_parent.parent_order_id, lost_parent.parent_order_id}
    await harness.events.wait_for(
        lambda: {e["parent_order_id"] for e in harness.events.of("parent.completed")} >= pids,
        timeout=30)
    # Within a few sweeps of 0.5 s, long before the default 5 s sweep would have come.
    assert loop.time() - started < 4.0
    (found,) = harness.events.of("slice.submitted", parent_order_id=booked_parent.parent_order_id)
    (sent,) = harness.events.of("slice.submitted", parent_order_id=lost_parent.parent_order_id)
    assert found["broker_order_id"] == existing.broker_order_id
    assert sent["broker_order_id"] == broker.orders[lost.client_order_id].broker_order_id
    assert broker.attempts == 2 and len(broker.orders) == 2
