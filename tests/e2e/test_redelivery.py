"""A request decided again after its commit (scheduling failed, the commit's answer was lost,
RabbitMQ redelivered it) maps to what the first decision did, and leaves nothing undone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from tests.support.harness import Harness, submit_body
from worker.app import Worker
from worker.store.tables import parents


class Shifted:
    """The worker's clock: the wall clock moved by `offset` (tests move it across midnight)."""

    def __init__(self, at: datetime) -> None:
        self.offset = at - datetime.now(UTC)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def move_to(self, at: datetime) -> None:
        self.offset = at - datetime.now(UTC)


def next_midnight() -> datetime:
    today = datetime.now(UTC).date() + timedelta(days=1)
    return datetime(today.year, today.month, today.day, tzinfo=UTC)


def after_first_commit(worker: Worker, then: Callable[[], Any]) -> list[int]:
    """The worker's next intake transaction commits, then `then()` runs as if the commit's
    answer never came back (it raises). Returns the list of calls seen, for assertions."""
    real = worker.store.apply_intake
    calls: list[int] = []

    async def apply(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[0]))
        result = await real(*args, **kwargs)
        if len(calls) == 1:
            then()
        return result

    worker.store.apply_intake = apply  # type: ignore[method-assign]
    return calls


def lose_answer() -> None:
    raise OSError("injected: connection lost after the commit")


async def parent_count(worker: Worker) -> int:
    async with worker.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(parents))).scalar_one())


async def test_parent_left_unscheduled_is_armed_by_its_redelivered_duplicate(
    harness: Harness,
) -> None:
    """Scheduling fails after the commit: the message is requeued, its redelivery is a
    duplicate, and the duplicate arms the parent: every slice goes out, none expires."""
    worker = await harness.start_worker(misfire_grace_seconds=2)
    real_add = worker.scheduler.add
    failed: list[str] = []

    def add_failing_once(parent_id: str, **kwargs: Any) -> None:
        if not failed:
            failed.append(parent_id)
            raise RuntimeError("injected: scheduling failed")
        real_add(parent_id, **kwargs)

    worker.scheduler.add = add_failing_once  # type: ignore[method-assign]
    await harness.publish(submit_body(qty=4, duration_seconds=4, interval_seconds=1))
    (done,) = await harness.events.wait_for(
        lambda: harness.events.of("parent.completed"), timeout=20)
    pid = done["parent_order_id"]
    assert failed == [pid]
    assert len(harness.events.of("request.duplicate", parent_order_id=pid)) == 1
    assert done["by_status"] == {"filled": {"count": 4, "qty": 4}}, done["by_status"]


async def test_parent_whose_commit_answer_was_lost_is_armed_by_the_retry(
    harness: Harness,
) -> None:
    """The commit's answer is lost: the request is decided again, finds its own parent (a
    duplicate) and arms it: every slice goes out, none expires."""
    worker = await harness.start_worker(misfire_grace_seconds=2)
    calls = after_first_commit(worker, lose_answer)
    await harness.publish(submit_body(qty=4, duration_seconds=4, interval_seconds=1))
    (done,) = await harness.events.wait_for(
        lambda: harness.events.of("parent.completed"), timeout=20)
    assert len(calls) == 2 and len(harness.events.of("request.duplicate")) == 1
    assert done["by_status"] == {"filled": {"count": 4, "qty": 4}}, done["by_status"]


async def test_cancel_decided_again_repeats_its_counts(harness: Harness) -> None:
    """A cancel whose commit answer was lost is decided again: its reply and its re-emitted
    `parent.canceled` carry the counts of the cancel that happened, not zeros."""
    worker = await harness.start_worker()
    cid = await harness.publish(
        submit_body(qty=10, duration_seconds=100, interval_seconds=10), reply=True)
    pid = (await harness.reply_for(cid))["parent_order_id"]
    after_first_commit(worker, lose_answer)
    ccid = await harness.publish({"type": "cancel", "parent_order_id": pid}, reply=True)
    announced = await harness.events.wait_for(
        lambda: (found := harness.events.of("parent.canceled", parent_order_id=pid))
        and len(found) == 2 and found)
    reply = await harness.reply_for(ccid)
    counts = [(e["canceled_slices"], e["in_flight_slices"]) for e in announced]
    assert counts[0][0] >= 9 and counts == [counts[0]] * 2, counts
    assert (reply["canceled_slices"], reply["in_flight_slices"]) == counts[0]
    assert len(harness.events.of("slice.canceled", parent_order_id=pid)) == counts[0][0]


async def test_redelivery_after_midnight_maps_to_the_same_parent(harness: Harness) -> None:
    """A submit without trade_date, start_at or timestamp, committed just before midnight and
    redelivered by RabbitMQ just after: the same parent (a duplicate), not a second one."""
    midnight = next_midnight()
    clock = Shifted(midnight - timedelta(seconds=30))
    worker = await harness.start_worker(clock=clock)

    def cross_midnight_and_fail() -> None:
        clock.move_to(midnight + timedelta(seconds=30))
        raise RuntimeError("injected: the worker fails after the commit")  # → requeued

    calls = after_first_commit(worker, cross_midnight_and_fail)
    await harness.publish(submit_body(request_id=None), message_id="m-midnight-1")
    await harness.events.wait_for(lambda: harness.events.of("request.duplicate")
                                  or len(harness.events.of("parent.accepted")) > 1)
    assert len(calls) == 2
    (accepted,) = harness.events.of("parent.accepted")
    assert accepted["trade_date"] == (midnight - timedelta(days=1)).date().isoformat()
    assert harness.events.of("request.duplicate")[0]["parent_order_id"] == (
        accepted["parent_order_id"])
    assert await parent_count(worker) == 1


async def test_amqp_timestamp_gives_the_default_trade_date(harness: Harness) -> None:
    """A submit published at 23:59:58 (AMQP timestamp) and received after midnight is dated
    the day it was published."""
    midnight = next_midnight()
    await harness.start_worker(clock=Shifted(midnight + timedelta(seconds=5)))
    cid = await harness.publish(submit_body(request_id=None), reply=True,
                                timestamp=midnight - timedelta(seconds=2))
    reply = await harness.reply_for(cid)
    (accepted,) = await harness.events.wait_for(
        lambda: harness.events.of("parent.accepted", parent_order_id=reply["parent_order_id"]))
    assert accepted["trade_date"] == date.fromordinal(midnight.toordinal() - 1).isoformat()
