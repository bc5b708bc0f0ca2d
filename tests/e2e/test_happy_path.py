"""A TWAP from request to completion, through real RabbitMQ and a real database."""

from __future__ import annotations

from tests.support.harness import Harness, submit_body
from worker.brokers.sim import SimBroker


async def test_submit_runs_every_slice_and_completes(harness: Harness) -> None:
    """103 shares over 5 slices: accepted, 5 orders 21/21/21/20/20 at the broker, each filled
    at once (market orders at the sim), completed."""
    await harness.start_worker()
    cid = await harness.publish(submit_body(), reply=True)
    reply = await harness.reply_for(cid)
    assert reply["outcome"] == "accepted"
    pid = reply["parent_order_id"]
    assert [s["qty"] for s in reply["slices"]] == [21, 21, 21, 20, 20]
    done = await harness.events.wait_for(lambda: harness.events.of("parent.completed",
                                                                   parent_order_id=pid))
    assert done[0]["by_status"] == {"filled": {"count": 5, "qty": 103}}
    assert (done[0]["outcome"], done[0]["filled_qty"]) == ("filled", 103)
    submitted = harness.events.of("slice.submitted", parent_order_id=pid)
    assert sorted(e["slice_num"] for e in submitted) == [0, 1, 2, 3, 4]
    broker = harness.broker
    assert isinstance(broker, SimBroker)
    assert sorted(o.order.qty for o in broker.orders.values()) == [20, 20, 21, 21, 21]
    assert broker.attempts == 5
