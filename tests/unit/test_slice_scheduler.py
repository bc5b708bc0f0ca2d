"""SliceScheduler's hand-over: slice work runs as tracked tasks until shutdown begins, and
none starts after."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from worker.runtime.scheduling import SliceScheduler

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _scheduler() -> SliceScheduler:
    return SliceScheduler(lambda pid, num, due, spawn: None, lambda: NOW)


async def test_spawned_work_runs_as_a_task_shutdown_waits_for() -> None:
    scheduler = _scheduler()
    ran: list[str] = []
    release = asyncio.Event()

    async def work() -> None:
        await release.wait()
        ran.append("done")

    task = scheduler.spawn(work())
    assert task is not None and scheduler.in_flight == 1
    shutdown = asyncio.create_task(scheduler.shutdown(within=5))
    await asyncio.sleep(0)
    release.set()
    await shutdown
    assert ran == ["done"] and scheduler.in_flight == 0


async def test_once_shutdown_began_spawned_work_is_closed_unstarted() -> None:
    scheduler = _scheduler()
    await scheduler.shutdown(within=1)
    started: list[str] = []

    async def work() -> None:
        started.append("ran")

    coroutine = work()
    assert scheduler.spawn(coroutine) is None
    assert coroutine.cr_frame is None  # closed, never to run (and no "never awaited" warning)
    await asyncio.sleep(0)
    assert started == [] and scheduler.in_flight == 0
