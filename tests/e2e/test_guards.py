"""Guards before every slice, retries and the circuit breaker, end to end."""

from __future__ import annotations

from tests.support.harness import Harness, submit_body
from worker.brokers.sim import SimBroker


def sim(h: Harness) -> SimBroker:
    assert isinstance(h.broker, SimBroker)
    return h.broker


async def test_kill_switch_blocks_the_rest_of_a_running_twap(harness: Harness) -> None:
    """Engaged mid-flight: later slices end blocked_kill_switch, none reach the broker."""
    await harness.start_worker()
    cid = await harness.publish(submit_body(qty=40, duration_seconds=4, interval_seconds=1),
                                reply=True)
    pid = (await harness.reply_for(cid))["parent_order_id"]
    await harness.events.wait_for(lambda: harness.events.of("slice.submitted"))
    await harness.control("kill_switch.engage", "risk limit")
    await harness.events.wait_for(lambda: harness.events.of("control.kill_switch.engaged"))
    sent_at_engage = len(sim(harness).orders)
    done = await harness.events.wait_for(
        lambda: harness.events.of("parent.completed", parent_order_id=pid))
    blocked = harness.events.of("slice.blocked_kill_switch", parent_order_id=pid)
    submitted = harness.events.of("slice.submitted", parent_order_id=pid)
    assert blocked and all(e["reason"] == "risk limit" for e in blocked)
    assert len(blocked) + len(submitted) == 4
    assert len(sim(harness).orders) == len(submitted) <= sent_at_engage + 1
    assert done[0]["by_status"]["blocked_kill_switch"]["count"] == len(blocked)
    engaged = harness.events.of("control.kill_switch.engaged")[0]
    assert engaged["operator"] == "test" and engaged["automatic"] is False


async def test_release_lets_new_slices_through(harness: Harness) -> None:
    """After kill_switch.release, a new TWAP runs normally."""
    await harness.start_worker()
    await harness.control("kill_switch.engage", "pause")
    await harness.control("kill_switch.release")
    await harness.events.wait_for(lambda: harness.events.of("control.kill_switch.released"))
    await harness.publish(submit_body(qty=2, duration_seconds=2))
    done = await harness.events.wait_for(lambda: harness.events.of("parent.completed"))
    assert done[0]["by_status"]["filled"]["count"] == 2


async def test_retry_then_success_sends_one_order(harness: Harness) -> None:
    """Two transient failures then success: one order at the broker, attempts = 3."""
    sim(harness).fail_next("transient", "transient")
    await harness.start_worker()
    await harness.publish(submit_body(qty=5, duration_seconds=1))
    done = await harness.events.wait_for(lambda: harness.events.of("slice.submitted"))
    assert done[0]["attempts"] == 3
    assert len(sim(harness).orders) == 1 and sim(harness).attempts == 3


async def test_ambiguous_failure_is_looked_up_not_resent(harness: Harness) -> None:
    """The order was booked but the answer timed out: found by client_order_id, not resent."""
    sim(harness).fail_next("ambiguous")
    await harness.start_worker()
    await harness.publish(submit_body(qty=5, duration_seconds=1))
    done = await harness.events.wait_for(lambda: harness.events.of("slice.submitted"))
    assert done[0]["broker_order_id"] is not None
    assert sim(harness).attempts == 1 and len(sim(harness).orders) == 1


async def test_rejection_is_not_retried(harness: Harness) -> None:
    """The broker refuses: slice rejected after exactly one attempt, with the reason."""
    sim(harness).fail_next("reject")
    await harness.start_worker()
    await harness.publish(submit_body(qty=5, duration_seconds=1))
    rejected = await harness.events.wait_for(lambda: harness.events.of("slice.rejected"))
    assert rejected[0]["attempts"] == 1 and "buying power" in rejected[0]["reason"]
    assert sim(harness).attempts == 1 and not sim(harness).orders


async def test_breaker_trips_after_consecutive_failures_and_blocks(harness: Harness) -> None:
    """3 slices failing every attempt trip the breaker; the next slice is blocked; only
    breaker.reset clears it."""
    sim(harness).fail_next(*["transient"] * 9)  # 3 slices × 3 attempts
    await harness.start_worker(breaker_max_failures=3)
    await harness.publish(submit_body(qty=4, duration_seconds=4, interval_seconds=1))
    tripped = await harness.events.wait_for(
        lambda: harness.events.of("control.breaker.tripped"))
    assert tripped[0]["automatic"] is True and "3 consecutive" in tripped[0]["reason"]
    blocked = await harness.events.wait_for(
        lambda: harness.events.of("slice.blocked_circuit_breaker"))
    assert blocked[0]["slice_num"] == 3
    assert len(harness.events.of("slice.failed")) == 3
    assert not sim(harness).orders
    await harness.control("breaker.reset")
    await harness.events.wait_for(lambda: harness.events.of("control.breaker.reset"))
    await harness.publish(submit_body(qty=1, duration_seconds=1))
    await harness.events.wait_for(lambda: harness.events.of("slice.submitted"))


async def test_manual_breaker_trip_blocks(harness: Harness) -> None:
    """breaker.trip by an operator blocks slices with its reason."""
    await harness.start_worker()
    await harness.control("breaker.trip", "exchange halt")
    await harness.events.wait_for(lambda: harness.events.of("control.breaker.tripped"))
    await harness.publish(submit_body(qty=1, duration_seconds=1))
    blocked = await harness.events.wait_for(
        lambda: harness.events.of("slice.blocked_circuit_breaker"))
    assert blocked[0]["reason"] == "exchange halt"


async def test_invalid_control_message_is_dead_lettered(harness: Harness) -> None:
    """kill_switch.engage without a reason is refused: DLQ with the reason, switch unchanged."""
    await harness.start_worker()
    await harness.publish({"type": "kill_switch.engage"}, queue=harness.names.control)
    (dead,) = await harness.dlq_messages(1)
    assert dead.headers["x-twap-source-queue"] == harness.names.control
    assert harness.worker is not None
    assert not (await harness.worker.store.switches()).kill_switch_engaged
