"""The admission gate: a cap on slices in flight, waiters served by due time, slots always back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from worker.runtime.admission import AdmissionGate

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def settle() -> None:
    """Let every ready task run until each waits on something."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_never_more_slots_taken_than_the_limit() -> None:
    """With 50 holders competing for 3 slots, at most 3 hold one at any moment, all get one."""
    gate = AdmissionGate(3)
    holding = peak = done = 0

    async def hold(i: int) -> None:
        nonlocal holding, peak, done
        async with gate.slot(at(i)) as admitted:
            assert admitted
            holding += 1
            peak = max(peak, holding)
            await asyncio.sleep(0)
            holding -= 1
            done += 1

    await asyncio.gather(*(hold(i) for i in range(50)))
    assert (peak, done, gate.in_use, gate.waiting) == (3, 50, 0, 0)


async def test_waiters_are_served_in_order_of_due_time_not_arrival() -> None:
    """Slices arriving late but due earlier go first; equal due times go in arrival order."""
    gate = AdmissionGate(1)
    assert await gate.acquire(at(0))
    served: list[str] = []

    async def wait(name: str, due: datetime) -> None:
        async with gate.slot(due):
            served.append(name)

    dues = {"d": at(9), "b": at(3), "c1": at(5), "a": at(1), "c2": at(5)}
    tasks = [asyncio.create_task(wait(name, due)) for name, due in dues.items()]
    await settle()
    assert gate.waiting == 5 and not served
    gate.release()
    await asyncio.gather(*tasks)
    assert served == ["a", "b", "c1", "c2", "d"]
    assert (gate.in_use, gate.waiting) == (0, 0)


async def test_the_slot_comes_back_when_the_block_raises() -> None:
    """An exception inside the slot releases it: the next waiter gets it."""
    gate = AdmissionGate(1)
    with pytest.raises(RuntimeError):
        async with gate.slot(at(0)):
            raise RuntimeError("broker exploded")
    assert gate.in_use == 0
    async with gate.slot(at(1)) as admitted:
        assert admitted and gate.in_use == 1


async def test_a_canceled_holder_releases_its_slot() -> None:
    """A task canceled while it holds a slot gives it back."""
    gate = AdmissionGate(1)
    inside = asyncio.Event()

    async def hold() -> None:
        async with gate.slot(at(0)):
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gate.in_use == 0


async def test_a_canceled_waiter_leaves_the_queue_and_takes_nothing() -> None:
    """A waiter canceled before its turn is skipped: the slot goes to the next one."""
    gate = AdmissionGate(1)
    assert await gate.acquire(at(0))
    first = asyncio.create_task(gate.acquire(at(1)))
    second = asyncio.create_task(gate.acquire(at(2)))
    await settle()
    first.cancel()
    await settle()
    assert gate.waiting == 1
    gate.release()
    assert await second is True
    assert first.cancelled() and gate.in_use == 1


async def test_a_waiter_canceled_in_the_moment_it_is_granted_passes_the_slot_on() -> None:
    """Granted and canceled in the same loop turn: the slot is not lost, the next one gets it."""
    gate = AdmissionGate(1)
    assert await gate.acquire(at(0))
    first = asyncio.create_task(gate.acquire(at(1)))
    second = asyncio.create_task(gate.acquire(at(2)))
    await settle()
    gate.release()  # hands the slot to `first`...
    first.cancel()  # ...which is canceled before it runs again
    assert await second is True
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (gate.in_use, gate.waiting) == (1, 0)


async def test_a_waiter_past_its_deadline_leaves_without_a_slot() -> None:
    """A slice whose grace runs out while waiting is refused (False), the others still served."""
    gate = AdmissionGate(1)
    assert await gate.acquire(at(0))
    late = asyncio.create_task(gate.acquire(at(1), within=0.01))
    patient = asyncio.create_task(gate.acquire(at(2)))
    assert await late is False
    assert gate.waiting == 1
    gate.release()
    assert await patient is True
    assert (gate.in_use, gate.waiting) == (1, 0)


async def test_a_deadline_already_passed_is_refused_at_once_when_the_gate_is_full() -> None:
    """No wait at all for a slice already beyond its grace when no slot is free."""
    gate = AdmissionGate(1)
    assert await gate.acquire(at(0))
    assert await gate.acquire(at(1), within=-1.0) is False
    assert (gate.in_use, gate.waiting) == (1, 0)


async def test_a_free_slot_is_taken_even_past_the_deadline() -> None:
    """With a slot free, a late slice goes through the gate: the claim's guard expires it."""
    gate = AdmissionGate(1)
    assert await gate.acquire(at(0), within=-1.0) is True


def test_a_limit_below_one_is_refused() -> None:
    """A gate that could never admit anything is a configuration error, said clearly."""
    with pytest.raises(ValueError, match="at least 1"):
        AdmissionGate(0)


class Starters:
    """Starters that record who got a slot (and whether it waited), taking it or not."""

    def __init__(self, gate: AdmissionGate) -> None:
        self.gate = gate
        self.started: list[tuple[str, bool]] = []

    def add(self, name: str, due: datetime, *, take: bool = True) -> None:
        def start(waited: bool) -> bool:
            self.started.append((name, waited))
            return take
        self.gate.enqueue(due, start)


async def test_a_fired_slice_with_a_free_slot_starts_at_once_without_waiting() -> None:
    gate = AdmissionGate(2)
    starters = Starters(gate)
    starters.add("a", at(0))
    assert starters.started == [("a", False)]
    assert (gate.in_use, gate.waiting) == (1, 0)


async def test_fired_slices_beyond_the_limit_wait_as_entries_and_start_by_due_time() -> None:
    gate = AdmissionGate(1)
    starters = Starters(gate)
    starters.add("first", at(5))
    for name, second in (("late", 3), ("early", 1), ("middle", 2)):
        starters.add(name, at(second))
    assert starters.started == [("first", False)]
    assert (gate.in_use, gate.waiting) == (1, 3)
    assert len(asyncio.all_tasks()) == 1  # the test's own: waiting made no task
    for _ in range(3):
        gate.release()
    assert starters.started == [("first", False), ("early", True), ("middle", True),
                                ("late", True)]
    assert (gate.in_use, gate.waiting) == (1, 0)
    gate.release()
    assert gate.in_use == 0


async def test_a_declined_slot_goes_on_to_the_next_entry_and_back_when_nobody_takes_it() -> None:
    gate = AdmissionGate(1)
    starters = Starters(gate)
    starters.add("running", at(0))
    starters.add("expired", at(1), take=False)
    starters.add("next", at(2))
    gate.release()
    assert [name for name, _ in starters.started] == ["running", "expired", "next"]
    assert (gate.in_use, gate.waiting) == (1, 0)
    starters.add("also expired", at(3), take=False)
    gate.release()
    assert (gate.in_use, gate.waiting) == (0, 0)


async def test_a_starter_declining_a_free_slot_gives_it_back() -> None:
    gate = AdmissionGate(1)
    Starters(gate).add("expired", at(0), take=False)
    assert (gate.in_use, gate.waiting) == (0, 0)
    assert await gate.acquire(at(1), within=0)


async def test_a_starter_that_raises_loses_no_slot(caplog: pytest.LogCaptureFixture) -> None:
    gate = AdmissionGate(1)
    starters = Starters(gate)
    starters.add("running", at(0))

    def broken(waited: bool) -> bool:
        raise RuntimeError("boom")

    gate.enqueue(at(1), broken)
    starters.add("next", at(2))
    gate.release()
    assert [name for name, _ in starters.started] == ["running", "next"]
    assert gate.in_use == 1
    assert "gate.starter_failed" in caplog.text


async def test_entries_and_waiting_tasks_share_one_due_time_order() -> None:
    gate = AdmissionGate(1)
    assert await gate.acquire(at(0))
    task = asyncio.create_task(gate.acquire(at(2)))
    await asyncio.sleep(0)
    starters = Starters(gate)
    starters.add("entry due earlier", at(1))
    gate.release()
    assert starters.started == [("entry due earlier", True)]
    assert not task.done()
    gate.release()
    assert await task
    assert (gate.in_use, gate.waiting) == (1, 0)
