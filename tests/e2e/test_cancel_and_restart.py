"""Cancel mid-flight, repeat cancels, and a restart with slices still pending."""

from __future__ import annotations

from tests.support.harness import Harness, submit_body
from worker.brokers.sim import SimBroker


async def test_cancel_mid_flight_stops_what_has_not_gone_out(harness: Harness) -> None:
    """After 2 slices went out, cancel: the rest canceled with events, nothing more sent."""
    await harness.start_worker()
    cid = await harness.publish(submit_body(qty=80, duration_seconds=8, interval_seconds=1),
                                reply=True)
    pid = (await harness.reply_for(cid))["parent_order_id"]
    await harness.events.wait_for(
        lambda: len(harness.events.of("slice.submitted", parent_order_id=pid)) >= 2)
    ccid = await harness.publish({"type": "cancel", "parent_order_id": pid, "reason": "done"},
                                 reply=True)
    reply = await harness.reply_for(ccid)
    canceled = await harness.events.wait_for(
        lambda: harness.events.of("parent.canceled", parent_order_id=pid))
    event = canceled[0]
    assert event["reason"] == "done" and reply["outcome"] == "accepted"
    slice_canceled = harness.events.of("slice.canceled", parent_order_id=pid)
    assert len(slice_canceled) == event["canceled_slices"] >= 4
    assert all(e["reason"] == "done" for e in slice_canceled)
    assert harness.worker is not None
    rows = await harness.worker.store.get_slices(pid)
    # Market orders sent fill at once at the sim: sent slices end filled.
    sent = {r.client_order_id for r in rows if r.status.value == "filled"}
    assert {r.status.value for r in rows} <= {"filled", "canceled", "submitting"}
    assert isinstance(harness.broker, SimBroker)
    # Nothing canceled ever reached the broker.
    canceled_ids = {r.client_order_id for r in rows if r.status.value == "canceled"}
    assert not canceled_ids & set(harness.broker.orders)
    assert sent <= set(harness.broker.orders)
    assert harness.worker.scheduler.active_parents == 0


async def test_repeat_cancel_repeats_the_first_counts(harness: Harness) -> None:
    """A second cancel of the same parent changes nothing and answers with the first's counts."""
    await harness.start_worker()
    cid = await harness.publish(submit_body(qty=10, duration_seconds=10, interval_seconds=5,
                                            start_at=None), reply=True)
    pid = (await harness.reply_for(cid))["parent_order_id"]
    replies = [await harness.publish({"type": "cancel", "parent_order_id": pid}, reply=True)
               for _ in range(2)]
    events = await harness.events.wait_for(
        lambda: (found := harness.events.of("parent.canceled", parent_order_id=pid))
        and len(found) == 2 and found)
    counts = [(e["canceled_slices"], e["in_flight_slices"]) for e in events]
    answers = [await harness.reply_for(r) for r in replies]
    assert sum(counts[0]) >= 1 and counts[1] == counts[0]
    assert [(a["canceled_slices"], a["in_flight_slices"]) for a in answers] == counts
    assert len(harness.events.of("slice.canceled", parent_order_id=pid)) == counts[0][0]


async def test_restart_reschedules_pending_slices_without_resending(harness: Harness) -> None:
    """Stop the worker mid-TWAP and start a new one on the same database: the remaining
    slices run, each slice reaches the broker exactly once, the parent completes."""
    await harness.start_worker()
    cid = await harness.publish(submit_body(qty=4, duration_seconds=4, interval_seconds=1),
                                reply=True)
    pid = (await harness.reply_for(cid))["parent_order_id"]
    await harness.events.wait_for(
        lambda: len(harness.events.of("slice.submitted", parent_order_id=pid)) >= 2)
    await harness.stop_worker()
    await harness.start_worker()
    done = await harness.events.wait_for(
        lambda: harness.events.of("parent.completed", parent_order_id=pid), timeout=20)
    assert done[0]["by_status"]["filled"] == {"count": 4, "qty": 4}
    assert isinstance(harness.broker, SimBroker)
    assert harness.broker.attempts == 4 and len(harness.broker.orders) == 4


async def test_scheduler_jobs_grow_with_parents_not_slices(harness: Harness) -> None:
    """20 parents of 30 slices each need 20 parent jobs (+ five periodic ones: sweep, stats,
    reconcile, order ends, and one spare), not 600."""
    worker = await harness.start_worker()
    for n in range(20):
        await harness.publish(submit_body(qty=30, duration_seconds=300, interval_seconds=10,
                                          request_id=f"r{n}"))
    await harness.events.wait_for(lambda: len(harness.events.of("parent.accepted")) == 20)
    assert worker.scheduler.active_parents == 20
    assert worker.scheduler.parent_job_count == 20
    assert worker.scheduler.job_count <= 20 + 5
