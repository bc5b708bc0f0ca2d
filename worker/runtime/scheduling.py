"""One APScheduler job per active parent, re-armed for its next slice each time it fires.

The job count grows with parents, not slices (10,000 parents of 30 slices = 10,000 jobs), and a
job never waits for its slice: it hands the slice over (`RunSlice`: a task now, or a place at
the admission gate and a task when its slot comes) and re-arms, so a slow broker can't make
APScheduler skip a run. The database stays the source of truth; these jobs are rebuilt
from it on every start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from worker.core.slicing import due_time
from worker.runtime.clock import Clock

log = logging.getLogger(__name__)

# Runs slice work as a tracked task; None (the work closed, never run) once shutting down.
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None] | None"]
# Hands a slice that fell due (parent id, slice number, due time) over, with the way to start
# its task (executor.SliceExecutor.fire).
RunSlice = Callable[[str, int, datetime, Spawn], None]
PERIODIC_PREFIX = "periodic:"


@dataclass(slots=True)
class Timeline:
    """A parent's cadence and the next slice to fire."""

    start: datetime
    interval: int
    total: int
    next_slice: int
    not_before: datetime | None = None

    def next_fire(self) -> datetime:
        due = due_time(self.start, self.interval, self.next_slice)
        return max(due, self.not_before) if self.not_before else due


class SliceScheduler:
    def __init__(self, run_slice: RunSlice, clock: Clock) -> None:
        self._run_slice = run_slice
        self._clock = clock
        self._timelines: dict[str, Timeline] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            # None = run however late: our own code decides (expire beyond the grace), so a
            # loop stall can never make APScheduler drop a parent's chain silently.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._aps.add_listener(self._on_trouble, EVENT_JOB_ERROR | EVENT_JOB_MISSED
                               | EVENT_JOB_MAX_INSTANCES)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self._aps.start()

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    async def shutdown(self, within: float) -> None:
        """Stop firing, then let slices already in flight finish (up to `within` seconds).
        Slices still waiting for a slot start no more: never claimed, they stay `scheduled`
        for whoever runs next."""
        self._closing = True
        if self._aps.running:
            self._aps.shutdown(wait=False)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=within)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("scheduler.in_flight_abandoned", extra={"count": len(pending)})

    # -- parents ----------------------------------------------------------------------------
    def add(
        self,
        parent_id: str,
        *,
        start: datetime,
        interval: int,
        total: int,
        next_slice: int = 0,
        not_before: datetime | None = None,
    ) -> None:
        if next_slice >= total:
            return
        timeline = Timeline(start, interval, total, next_slice, not_before)
        self._timelines[parent_id] = timeline
        self._arm(parent_id, timeline)

    def armed(self, parent_id: str) -> bool:
        """The parent has a next firing here (its last slice, once fired, leaves none)."""
        return parent_id in self._timelines

    def drop(self, parent_id: str) -> None:
        if self._timelines.pop(parent_id, None) is not None:
            try:
                self._aps.remove_job(parent_id)
            except Exception:  # JobLookupError: it is firing right now, or already gone
                pass

    def every(self, name: str, seconds: float, func: Callable[[], Awaitable[None]]) -> None:
        """A periodic maintenance job (the overdue sweeper)."""
        self._aps.add_job(func, "interval", seconds=seconds, id=PERIODIC_PREFIX + name,
                          replace_existing=True)

    @property
    def job_count(self) -> int:
        return len(self._aps.get_jobs())

    @property
    def parent_job_count(self) -> int:
        """Jobs that fire slices (the rest are periodic maintenance)."""
        return sum(1 for job in self._aps.get_jobs() if not job.id.startswith(PERIODIC_PREFIX))

    @property
    def active_parents(self) -> int:
        return len(self._timelines)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def next_due(self) -> datetime | None:
        """When the next slice fires (None: nothing armed). A scan of the jobs: for the
        occasional maintenance decision, not for the per-slice path."""
        times = [job.next_run_time for job in self._aps.get_jobs()
                 if not job.id.startswith(PERIODIC_PREFIX) and job.next_run_time is not None]
        return min(times, default=None)

    def stats(self) -> dict[str, int]:
        """Counts for the `scheduler.stats` log line: parents, APScheduler jobs, slice tasks."""
        jobs = self._aps.get_jobs()
        periodic = sum(1 for job in jobs if job.id.startswith(PERIODIC_PREFIX))
        return {"active_parents": len(self._timelines), "job_count": len(jobs),
                "parent_jobs": len(jobs) - periodic, "in_flight": len(self._tasks)}

    # -- firing -----------------------------------------------------------------------------
    def _arm(self, parent_id: str, timeline: Timeline) -> None:
        self._aps.add_job(
            self._fire, "date", run_date=timeline.next_fire(), id=parent_id,
            args=[parent_id], replace_existing=True,
        )

    async def _fire(self, parent_id: str) -> None:
        timeline = self._timelines.get(parent_id)
        if timeline is None:
            return
        slice_num = timeline.next_slice
        due = due_time(timeline.start, timeline.interval, slice_num)
        now = self._clock()
        # Re-arm first: whatever happens to this slice, the next one stays scheduled.
        timeline.next_slice += 1
        timeline.not_before = now + timedelta(seconds=timeline.interval / 2)
        if timeline.next_slice < timeline.total:
            self._arm(parent_id, timeline)
        else:
            del self._timelines[parent_id]
        self._run_slice(parent_id, slice_num, due, self.spawn)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run slice work as a tracked task, so shutdown can wait for it; once shutdown has
        begun, close it unstarted and say so (None)."""
        if self._closing:
            work.close()
            return None
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_trouble(self, event: JobEvent) -> None:
        job_id = event.job_id
        log.error("scheduler.job_trouble", extra={"job_id": job_id, "code": event.code,
                                                  "error": str(getattr(event, "exception", ""))})
        timeline = self._timelines.get(job_id)
        if timeline is not None and self._aps.get_job(job_id) is None:
            self._arm(job_id, timeline)  # never leave a parent without its next firing
