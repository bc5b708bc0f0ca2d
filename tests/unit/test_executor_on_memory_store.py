"""SliceExecutor's decisions on the in-memory SliceStore: no database needed to pin what the
runtime does with a claim, a guard and an outcome."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.support.memory_store import MemoryStore
from twap_schemas.common import ParentStatus, SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.brokers.orders import Lifecycle, OrderView
from worker.brokers.sim import SimBroker
from worker.core.outcomes import Outcome
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.runtime.admission import AdmissionGate
from worker.runtime.execution import NOTHING_LEFT, ExecutionPolicy, SliceExecutor

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _setup(slices: int = 2) -> tuple[MemoryStore, SimBroker, ParentRecord, list[SliceRecord]]:
    request = SubmitRequest(type="submit", strategy_id="mem", symbol="AAPL", side="buy",
                            qty=slices, duration_seconds=slices, interval_seconds=1,
                            request_id=uuid.uuid4().hex, start_at=NOW)
    parent, records = build_plan(request, now=NOW)
    store = MemoryStore()
    store.add(parent, records)
    return store, SimBroker(), parent, records


def _executor(store: MemoryStore, broker: SimBroker, **policy: object) -> SliceExecutor:
    return SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0, **policy),  # type: ignore[arg-type]
                         lambda: NOW)


async def test_every_slice_is_sent_once_and_the_parent_completes() -> None:
    """Both slices sent once each; the sim fills a market order at once, so each is recorded
    submitted with that view and ends filled; a second run of a slice sends nothing."""
    store, broker, parent, records = _setup()
    executor = _executor(store, broker)
    for record in records:
        await executor.run(parent.parent_order_id, record.slice_num, record.scheduled_time)
    await executor.run(parent.parent_order_id, 0, records[0].scheduled_time)
    assert broker.attempts == 2
    assert {r.status for r in store.slices.values()} == {SliceStatus.FILLED}
    assert store.parents[parent.parent_order_id].status is ParentStatus.COMPLETED
    assert store.types() == ["slice.submitted", "slice.fill", "slice.filled",
                             "slice.submitted", "slice.fill", "slice.filled", "parent.completed"]


async def test_an_engaged_kill_switch_blocks_the_slice_unsent() -> None:
    """The kill switch read with the claim: the slice ends blocked and nothing is sent."""
    store, broker, parent, records = _setup()
    store.engage_kill_switch("halt")
    await _executor(store, broker).run(parent.parent_order_id, 0, records[0].scheduled_time)
    assert broker.attempts == 0
    assert store.slices[(parent.parent_order_id, 0)].status is SliceStatus.BLOCKED_KILL_SWITCH


async def test_a_cancel_after_the_claim_is_seen_by_the_pre_send_guard() -> None:
    """The parent canceled right after the slice's claim: the guard read before the send sees
    it; the slice ends canceled, unsent."""
    store, broker, parent, records = _setup()
    store.after_claim = lambda key: store.cancel(key[0]) and None  # type: ignore[assignment]
    executor = _executor(store, broker, guard_fresh=0.0)
    await executor.run(parent.parent_order_id, 0, records[0].scheduled_time)
    assert broker.attempts == 0
    assert store.slices[(parent.parent_order_id, 0)].status is SliceStatus.CANCELED


async def test_failures_trip_the_breaker_and_block_the_next_slice() -> None:
    """Two rejected-by-retries slices with breaker_max_failures=2 trip the breaker; the third
    slice is blocked by it, unsent."""
    store, broker, parent, records = _setup(3)
    broker.fail_next(*["transient"] * 6)
    executor = _executor(store, broker, attempts=3, breaker_max_failures=2)
    for record in records:
        await executor.run(parent.parent_order_id, record.slice_num, record.scheduled_time)
    statuses = [store.slices[(parent.parent_order_id, n)].status for n in range(3)]
    assert statuses == [SliceStatus.FAILED, SliceStatus.FAILED,
                        SliceStatus.BLOCKED_CIRCUIT_BREAKER]
    assert broker.attempts == 6
    assert store.switches.breaker_tripped


async def test_a_shortfall_is_caught_up_by_the_next_slice() -> None:
    """Slice 0's order closed unfilled: slice 1 sends its plan plus the shortfall (2 + 2),
    writes its qty before the send (the plan's in planned_qty), and fills."""
    store, broker, parent, records = _setup(2)
    store.parents[parent.parent_order_id] = parent = replace(parent, qty=4)
    store.slices[(parent.parent_order_id, 0)] = replace(records[0], qty=2)
    store.slices[(parent.parent_order_id, 1)] = replace(records[1], qty=2)
    executor = _executor(store, broker)
    pid = parent.parent_order_id
    broker.market.prices = {"AAPL": Decimal("100")}
    claimed = await store.claim(pid, 0, NOW)
    assert claimed is not None
    await store.finish(claimed[0], claimed[1], Outcome(SliceStatus.SUBMITTED, 1, "b0"), NOW,
                       max_failures=5)
    assert store.parents[pid].working_qty == 2
    store.apply_view(OrderView(records[0].client_order_id, "b0", Lifecycle.CLOSED, 0, None, NOW,
                               "expired"), NOW)
    assert store.parents[pid].working_qty == 0
    await executor.run(pid, 1, records[1].scheduled_time)
    sent = store.slices[(pid, 1)]
    assert (sent.qty, sent.planned_qty, sent.status, sent.filled_qty) == (
        4, 2, SliceStatus.FILLED, 4)
    assert broker.orders[sent.client_order_id].order.qty == 4


async def test_a_slice_with_nothing_left_closes_unsent(
        caplog: pytest.LogCaptureFixture) -> None:
    """The parent's qty already filled (or working): the slice sends nothing and ends closed,
    its qty 0 and the plan's kept beside it; logged at INFO (the plan working, no problem)."""
    caplog.set_level(logging.INFO, logger="worker.runtime.execution")
    store, broker, parent, records = _setup(2)
    pid = parent.parent_order_id
    store.parents[pid] = replace(parent, filled_qty=parent.qty)
    await _executor(store, broker).run(pid, 1, records[1].scheduled_time)
    closed = store.slices[(pid, 1)]
    assert (closed.status, closed.qty, closed.planned_qty, closed.reason) == (
        SliceStatus.CLOSED, 0, 1, NOTHING_LEFT)
    assert broker.attempts == 0
    logged = [r for r in caplog.records if r.getMessage() == "slice.closed"]
    assert [r.levelno for r in logged] == [logging.INFO]


async def test_late_slices_fired_together_never_send_more_than_the_parents_qty() -> None:
    """100 shares in 10 slices of 10, ratio 10; slices 0-5 ended unexecuted (an outage);
    slices 6 and 7 fire together, the store answering after a turn of the loop as a database
    does. Sizing is one locked step, so whichever is sized second counts what the first took:
    together they send the 80 the plan wants by slice 7 (not 70 + 80), then 8 and 9 send 10
    each; 100 in all, never more."""
    store, broker, parent, records = _setup(10)
    pid = parent.parent_order_id
    store.parents[pid] = replace(parent, qty=100, max_catch_up_ratio=Decimal(10))
    for r in records:
        store.slices[(pid, r.slice_num)] = replace(
            r, qty=10, status=SliceStatus.EXPIRED if r.slice_num < 6 else r.status)
    size_now = store.size_claimed

    async def size_later(*args: Any) -> int | None:
        await asyncio.sleep(0)
        return await size_now(*args)

    store.size_claimed = size_later  # type: ignore[method-assign,assignment]
    executor = _executor(store, broker)
    await asyncio.gather(executor.run(pid, 6, records[6].scheduled_time),
                         executor.run(pid, 7, records[7].scheduled_time))
    for num in (8, 9):
        await executor.run(pid, num, records[num].scheduled_time)
    sent = [store.slices[(pid, num)].qty for num in range(6, 10)]
    assert sent[0] + sent[1] == 80, sent
    assert sent[2:] == [10, 10]
    assert store.parents[pid].filled_qty == 100


async def test_sending_slices_leaves_no_reference_cycles_behind() -> None:
    """Everything a send allocates goes by reference counting, a retry included: the garbage
    collector freezes what is alive at each full collection (observability.gcpause), so a cycle
    still in flight then would never be freed, a few objects per slice for as long as the
    worker runs."""
    store, broker, parent, records = _setup(slices=12)
    executor = _executor(store, broker)
    await executor.run(parent.parent_order_id, 0, records[0].scheduled_time)  # warm-up
    gc.collect()
    gc.disable()
    try:
        for record in records[1:]:
            if record.slice_num % 3 == 0:
                broker.fail_next("transient")
            await executor.run(parent.parent_order_id, record.slice_num, record.scheduled_time)
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert {r.status for r in store.slices.values()} == {SliceStatus.FILLED}
    assert broker.attempts == 12 + 3  # three slices were sent twice
    assert unreachable == 0


class Spawner:
    """The scheduler's side of `fire`: tracked tasks, refused once stopping."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.started = 0
        self.stopping = False

    def __call__(self, work: Any) -> asyncio.Task[None] | None:
        if self.stopping:
            work.close()
            return None
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.started += 1
        return task

    async def settle(self) -> None:
        while self.tasks:
            await asyncio.gather(*self.tasks)


def _many(parents: int) -> tuple[MemoryStore, SimBroker, list[tuple[str, int, datetime]]]:
    store, broker = MemoryStore(), SimBroker()
    keys = []
    for n in range(parents):
        request = SubmitRequest(type="submit", strategy_id="mem", symbol="AAPL", side="buy",
                                qty=2, duration_seconds=2, interval_seconds=1,
                                request_id=f"r{n}", start_at=NOW)
        parent, records = build_plan(request, now=NOW)
        store.add(parent, records)
        keys += [(parent.parent_order_id, r.slice_num, r.scheduled_time) for r in records]
    return store, broker, keys


def _gated(store: MemoryStore, broker: SimBroker, clock: Any = lambda: NOW,
           slots: int = 1) -> SliceExecutor:
    """An executor with `slots` slots at its gate."""
    return SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0), clock,
                         gate=AdmissionGate(slots))


async def test_slices_fired_beyond_the_in_flight_limit_wait_as_entries_not_tasks() -> None:
    store, broker, keys = _many(10)
    executor = _gated(store, broker, slots=2)
    spawn = Spawner()
    for pid, num, due in keys:
        executor.fire(pid, num, due, spawn)
    # Two slots: two tasks; the other 18 slices wait at the gate, held (the sweeper's view).
    assert (len(spawn.tasks), executor.gate.waiting) == (2, 18)
    assert len(executor.held()) == 20
    await spawn.settle()
    assert (spawn.started, broker.attempts) == (20, 20)
    assert {r.status for r in store.slices.values()} == {SliceStatus.FILLED}
    assert (executor.gate.in_use, executor.gate.waiting, executor.held()) == (0, 0, frozenset())


async def test_a_slice_fired_twice_is_handed_over_once() -> None:
    store, broker, keys = _many(1)
    executor = _gated(store, broker)
    spawn = Spawner()
    pid, num, due = keys[0]
    executor.fire(pid, num, due, spawn)
    executor.fire(pid, num, due, spawn)
    await spawn.settle()
    assert (spawn.started, broker.attempts) == (1, 1)


async def test_a_slice_that_waited_past_its_grace_is_never_claimed_and_is_expired() -> None:
    store, broker, keys = _many(1)
    clock = [NOW]
    executor = _gated(store, broker, lambda: clock[0])
    spawn = Spawner()
    (pid, first, due), (_, second, second_due) = keys
    executor.fire(pid, second, second_due, spawn)  # takes the slot
    executor.fire(pid, first, due, spawn)  # waits for it
    clock[0] = due + timedelta(seconds=60, microseconds=1)  # just past the first one's grace
    await spawn.settle()
    await executor.drain()  # the batch expiry the decline asked for
    assert broker.attempts == 1  # the second, 59 s late, inside its grace
    assert store.slices[(pid, second)].status is SliceStatus.FILLED
    assert store.slices[(pid, first)].status is SliceStatus.EXPIRED
    assert executor.metrics.expired_waiting._value.get() == 1
    assert executor.held() == frozenset()


async def test_a_late_slice_with_a_free_slot_is_claimed_and_ended_by_the_guards() -> None:
    # Only waiting at the gate ends a slice unclaimed; one late when it fell due is claimed
    # and ends with the guards' reason, as before.
    store, broker, keys = _many(1)
    pid, num, due = keys[0]
    executor = SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0),
                             lambda: due + timedelta(seconds=61), gate=AdmissionGate(1))
    spawn = Spawner()
    executor.fire(pid, num, due, spawn)
    await spawn.settle()
    assert spawn.started == 1 and broker.attempts == 0
    assert store.slices[(pid, num)].status is SliceStatus.EXPIRED
    assert executor.metrics.expired_waiting._value.get() == 0


async def test_once_stopping_a_waiting_slice_starts_no_more_and_stays_scheduled() -> None:
    store, broker, keys = _many(1)
    executor = _gated(store, broker)
    spawn = Spawner()
    (pid, first, due), (_, second, second_due) = keys
    executor.fire(pid, first, due, spawn)
    executor.fire(pid, second, second_due, spawn)
    spawn.stopping = True
    await spawn.settle()
    assert broker.attempts == 1
    assert store.slices[(pid, second)].status is SliceStatus.SCHEDULED
    assert (executor.gate.in_use, executor.gate.waiting, executor.held()) == (0, 0, frozenset())


async def test_a_slice_whose_slot_comes_exactly_at_the_end_of_its_grace_is_claimed() -> None:
    store, broker, keys = _many(1)
    clock = [NOW]
    executor = _gated(store, broker, lambda: clock[0])
    spawn = Spawner()
    (pid, first, due), (_, second, second_due) = keys
    executor.fire(pid, second, second_due, spawn)
    executor.fire(pid, first, due, spawn)
    clock[0] = due + timedelta(seconds=60)  # the grace, not past it (the guards' rule too)
    await spawn.settle()
    assert broker.attempts == 2
    assert executor.metrics.expired_waiting._value.get() == 0


async def test_a_slice_already_past_its_grace_that_would_wait_is_dropped_at_once() -> None:
    store, broker, keys = _many(1)
    (pid, first, due), (_, second, second_due) = keys
    executor = SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0),
                             lambda: due + timedelta(seconds=61), gate=AdmissionGate(1))
    spawn = Spawner()
    executor.fire(pid, second, second_due, spawn)  # takes the free slot: claimed, judged
    executor.fire(pid, first, due, spawn)  # would wait, past its grace: not queued
    assert executor.gate.waiting == 0
    assert executor.metrics.expired_waiting._value.get() == 1
    await spawn.settle()
    await executor.drain()
    assert store.slices[(pid, first)].status is SliceStatus.EXPIRED
    assert broker.attempts == 1  # the other one, due 1 s later: 60 s late, inside its grace


async def test_a_burst_of_held_slices_leaves_no_table_behind_once_it_is_over() -> None:
    """2,000 slices held at once need a table of 8,192 entries (128 KiB); a set keeps it when
    emptied. Once the last of them ends the executor holds an empty set's worth again, so a
    worker that met one busy minute does not keep its peak for weeks."""
    store, broker, keys = _many(1_000)
    executor = _gated(store, broker, slots=8)
    spawn = Spawner()
    for pid, num, due in keys:
        executor.fire(pid, num, due, spawn)
    assert len(executor.held()) == 2_000
    assert sys.getsizeof(executor._held) > 128 * 1024
    assert executor.bursts == 0
    await spawn.settle()
    assert broker.attempts == 2_000
    assert executor.held() == frozenset()
    assert sys.getsizeof(executor._held) == sys.getsizeof(set())
    assert executor.bursts == 1  # the worker's cue to trim the heap (app.py)


async def test_a_slice_task_cancelled_before_its_first_step_gives_its_slot_back() -> None:
    store, broker, keys = _many(1)
    executor = _gated(store, broker)
    spawn = Spawner()
    (pid, first, due), (_, second, second_due) = keys
    executor.fire(pid, first, due, spawn)
    executor.fire(pid, second, second_due, spawn)
    (task,) = spawn.tasks
    task.cancel()  # before it ever ran
    await asyncio.gather(task, return_exceptions=True)
    await spawn.settle()  # the slot went on to the second slice
    assert store.slices[(pid, first)].status is SliceStatus.SCHEDULED
    assert store.slices[(pid, second)].status is SliceStatus.FILLED
    assert (executor.gate.in_use, executor.gate.waiting, executor.held()) == (0, 0, frozenset())


async def test_a_start_that_fails_leaves_neither_the_slot_nor_the_slice_held() -> None:
    store, broker, keys = _many(1)
    executor = _gated(store, broker)
    pid, num, due = keys[0]

    def broken(work: Any) -> None:
        work.close()
        raise RuntimeError("no tasks today")

    executor.fire(pid, num, due, broken)
    assert (executor.gate.in_use, executor.held()) == (0, frozenset())
    spawn = Spawner()
    executor.fire(pid, num, due, spawn)  # the same slice, handed over again, runs
    await spawn.settle()
    assert broker.attempts == 1
