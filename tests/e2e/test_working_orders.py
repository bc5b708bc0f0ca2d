"""`cancel_working_orders`: broker cancels run outside intake, a slice that lands after the
cancel is canceled at the broker, a stop resumes at the next start; intake's clock is read
when its transaction starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.harness import Harness, submit_body, worker_settings
from worker.brokers.base import BeforeSend, OrderRequest
from worker.brokers.orders import OrderView
from worker.brokers.sim import SimBroker


@dataclass
class GatedSim(SimBroker):
    """The sim broker with gates: cancels wait while `cancels_open` is clear; with
    `hold_submits` set, submits wait for `submits_open`. Priced orders rest (stay open)."""

    cancels_open: asyncio.Event = field(default_factory=asyncio.Event)
    hold_submits: bool = False
    submits_open: asyncio.Event = field(default_factory=asyncio.Event)
    submit_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    canceled: list[str] = field(default_factory=list)
    canceled_changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def submit(
        self, order: OrderRequest, before_send: BeforeSend | None = None
    ) -> OrderView:
        if self.hold_submits:
            # Held after the pre-send guard passed: the order is "on the wire" when the
            # cancel arrives, so the guard cannot stop it; it lands after the cancel.
            if before_send is not None:
                await before_send()
            self.submit_waiting.set()
            await self.submits_open.wait()
            return await SimBroker.submit(self, order)
        return await SimBroker.submit(self, order, before_send)

    async def cancel(self, broker_order_id: str) -> bool:
        await self.cancels_open.wait()
        done = await SimBroker.cancel(self, broker_order_id)
        if done:
            self.canceled.append(broker_order_id)
            self.canceled_changed.set()
        return done


@pytest.fixture
async def gated(amqp_url: str, database_url: str, namespace: str) -> AsyncIterator[Harness]:
    h = Harness(worker_settings(amqp_url, database_url, namespace), broker=GatedSim())
    await h.open()
    yield h
    await h.close()


def limit_body(**overrides: Any) -> dict[str, Any]:
    # Orders that keep working (never canceled at a slice's or the parent's end): what is
    # canceled at the broker here is the cancel's doing alone.
    return submit_body(order_type="limit", limit_price="10", slice_end="keep",
                       keep_working_after_end=True, **overrides)


async def submitted_parent(h: Harness, at_least: int, **overrides: Any) -> str:
    cid = await h.publish(limit_body(**overrides), reply=True)
    pid: str = (await h.reply_for(cid))["parent_order_id"]
    await h.events.wait_for(
        lambda: len(h.events.of("slice.submitted", parent_order_id=pid)) >= at_least)
    return pid


async def test_broker_cancels_do_not_hold_intake(gated: Harness) -> None:
    """While the broker cancels of a `cancel_working_orders` are still running, intake goes
    on (one intake slot): the next submit is accepted; `parent.canceled` follows the cancels."""
    broker = gated.broker
    assert isinstance(broker, GatedSim)
    await gated.start_worker(intake_concurrency=1)
    pid = await submitted_parent(gated, 2, qty=30, duration_seconds=6, interval_seconds=1)
    ccid = await gated.publish({"type": "cancel", "parent_order_id": pid,
                                "cancel_working_orders": True}, reply=True)
    assert (await gated.reply_for(ccid))["outcome"] == "accepted"
    nid = await gated.publish(submit_body(), reply=True)
    assert (await gated.reply_for(nid, timeout=10))["outcome"] == "accepted"
    assert not gated.events.of("parent.canceled", parent_order_id=pid)  # the cancels wait
    broker.cancels_open.set()
    (event,) = await gated.events.wait_for(
        lambda: gated.events.of("parent.canceled", parent_order_id=pid))
    # The sweep's count; a slice in flight at the cancel is canceled as it lands, not counted.
    late = len(broker.canceled) - event["working_orders_canceled"]
    assert event["working_orders_canceled"] >= 2 and 0 <= late <= event["in_flight_slices"]


async def test_slice_landing_after_the_cancel_is_canceled_at_the_broker(gated: Harness) -> None:
    """A slice in flight when its parent is canceled with its working orders: once it is
    recorded `submitted`, its order is canceled at the broker."""
    broker = gated.broker
    assert isinstance(broker, GatedSim)
    broker.cancels_open.set()
    broker.hold_submits = True
    await gated.start_worker()
    cid = await gated.publish(limit_body(qty=3, duration_seconds=30, interval_seconds=10),
                              reply=True)
    pid = (await gated.reply_for(cid))["parent_order_id"]
    await asyncio.wait_for(broker.submit_waiting.wait(), 10)  # slice 0 is in flight
    ccid = await gated.publish({"type": "cancel", "parent_order_id": pid,
                                "cancel_working_orders": True}, reply=True)
    assert (await gated.reply_for(ccid))["in_flight_slices"] == 1
    (event,) = await gated.events.wait_for(
        lambda: gated.events.of("parent.canceled", parent_order_id=pid))
    assert (event["in_flight_slices"], event["working_orders_canceled"]) == (1, 0)
    broker.submits_open.set()
    (landed,) = await gated.events.wait_for(
        lambda: gated.events.of("slice.submitted", parent_order_id=pid))

    async def canceled_at_broker() -> None:
        while landed["broker_order_id"] not in broker.canceled:
            broker.canceled_changed.clear()
            await broker.canceled_changed.wait()

    await asyncio.wait_for(canceled_at_broker(), 10)


async def test_broker_cancels_cut_by_a_stop_resume_at_the_next_start(gated: Harness) -> None:
    """The worker stops while the broker cancels wait: the next start does them and then
    writes `parent.canceled` with the count."""
    broker = gated.broker
    assert isinstance(broker, GatedSim)
    await gated.start_worker(shutdown_timeout_seconds=0.2)
    pid = await submitted_parent(gated, 2, qty=30, duration_seconds=6, interval_seconds=1)
    ccid = await gated.publish({"type": "cancel", "parent_order_id": pid,
                                "cancel_working_orders": True}, reply=True)
    await gated.reply_for(ccid)
    await gated.stop_worker()
    assert not gated.events.of("parent.canceled", parent_order_id=pid)
    broker.cancels_open.set()
    await gated.start_worker()
    (event,) = await gated.events.wait_for(
        lambda: gated.events.of("parent.canceled", parent_order_id=pid))
    late = len(broker.canceled) - event["working_orders_canceled"]
    assert event["working_orders_canceled"] >= 2 and 0 <= late <= event["in_flight_slices"]


async def test_batch_waiting_for_its_turn_is_planned_from_the_time_it_commits(
    harness: Harness,
) -> None:
    """A batch prepared while the one before holds the only intake slot, and kept waiting
    30 s: its slices are due from when its transaction starts, not from when it was parsed."""
    offset = [timedelta(0)]
    worker = await harness.start_worker(clock=lambda: datetime.now(UTC) + offset[0],
                                        intake_concurrency=1)
    first_in, release = asyncio.Event(), asyncio.Event()
    real_apply = worker.store.apply_intake

    async def held_apply(*args: Any, **kwargs: Any) -> Any:
        if not first_in.is_set():
            first_in.set()
            await release.wait()
        return await real_apply(*args, **kwargs)

    worker.store.apply_intake = held_apply  # type: ignore[method-assign]
    consumer = worker.requests_consumer
    real_prepare = consumer.prepare
    assert real_prepare is not None
    prepared = asyncio.Event()

    def noting_prepare(batch: Any) -> Any:
        result = real_prepare(batch)
        if first_in.is_set():
            prepared.set()
        return result

    consumer.prepare = noting_prepare
    await harness.publish(submit_body())
    await asyncio.wait_for(first_in.wait(), 10)
    cid = await harness.publish(submit_body(), reply=True)
    await asyncio.wait_for(prepared.wait(), 10)
    offset[0] = timedelta(seconds=30)
    moved = datetime.now(UTC) + offset[0]
    release.set()
    reply = await harness.reply_for(cid)
    first_due = datetime.fromisoformat(reply["slices"][0]["scheduled_time"])
    assert first_due >= moved, (first_due, moved)
