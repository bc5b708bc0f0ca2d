"""A broker that times out: an order booked but answered too late is found by client_order_id
and never sent again; a broker that keeps failing ends the slice `failed`, with its event."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.harness import Harness, submit_body
from tests.support.harness import worker_settings as harness_settings
from worker.brokers.sim import SimBroker

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]


@pytest.fixture
async def harness(amqp_url: str, sqlite_db: str, namespace: str) -> AsyncIterator[Harness]:
    """On SQLite: what is pinned does not depend on the database."""
    h = Harness(harness_settings(amqp_url, sqlite_db, namespace), broker=SimBroker())
    await h.open()
    yield h
    await h.close()


async def run_one_slice(harness: Harness, *faults: str) -> dict[str, object]:
    broker = harness.broker
    assert isinstance(broker, SimBroker)
    broker.fail_next(*faults)
    cid = await harness.publish(submit_body(qty=5, duration_seconds=1), reply=True)
    pid = (await harness.reply_for(cid))["parent_order_id"]
    await harness.events.wait_for(
        lambda: harness.events.of("parent.completed", parent_order_id=pid)
    )
    # The outcome of the send; a market order sent also fills at once (slice.fill, .filled).
    (event,) = [
        e
        for e in harness.events.events
        if e["event_type"].startswith("slice.") and e["parent_order_id"] == pid
        and e["event_type"] not in {"slice.fill", "slice.filled"}
    ]
    return event


async def test_order_booked_but_answered_too_late_is_looked_up_not_resent(
    harness: Harness,
) -> None:
    """Booked, then a timeout: the retry looks it up first; one order, slice submitted."""
    await harness.start_worker()
    event = await run_one_slice(harness, "ambiguous")
    broker = harness.broker
    assert isinstance(broker, SimBroker)
    assert event["event_type"] == "slice.submitted", event
    assert len(broker.orders) == 1 and broker.attempts == 1, (
        f"orders at the broker {len(broker.orders)}, sends {broker.attempts}"
    )
    assert event["broker_order_id"] == next(iter(broker.orders.values())).broker_order_id
    filled = harness.events.of("slice.filled", parent_order_id=event["parent_order_id"])
    assert [e["filled_qty"] for e in filled] == [5]


async def test_broker_failing_every_attempt_ends_the_slice_failed_with_its_event(
    harness: Harness,
) -> None:
    """Transient failures past the retry budget: slice.failed, no order, the parent completes."""
    await harness.start_worker(retry_attempts=3)
    event = await run_one_slice(harness, "transient", "transient", "transient")
    broker = harness.broker
    assert isinstance(broker, SimBroker)
    assert event["event_type"] == "slice.failed" and event["attempts"] == 3, event
    assert not broker.orders and broker.attempts == 3, f"sends {broker.attempts}"
