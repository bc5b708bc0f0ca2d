"""Start-up recovery: the database says what was going on; rebuild the schedule from it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from worker.runtime.clock import Clock
from worker.runtime.execution import SliceExecutor
from worker.runtime.scheduling import SliceScheduler
from worker.store.repository import Store

log = logging.getLogger(__name__)


async def recover(
    store: Store, executor: SliceExecutor, scheduler: SliceScheduler, grace: timedelta,
    clock: Clock,
) -> dict[str, int]:
    """Expire what is too late, settle what was in flight, re-arm every parent, complete."""
    expired = 0
    while True:
        batch = await store.expire_overdue(clock(), grace)
        expired += batch
        if batch == 0:
            break
    claimed = await store.claimed_slices()
    resumed_parents: dict[str, int] = {}
    for parent, record in claimed:
        resumed_parents[parent.parent_order_id] = parent.interval_seconds
        scheduler.spawn(executor.resume(parent, record))
    pending = await store.pending_parents()
    now = clock()
    for p in pending:
        # A parent whose slice is being settled right now waits half an interval for the next.
        paced = resumed_parents.get(p.parent_order_id)
        scheduler.add(
            p.parent_order_id, start=p.start_at, interval=p.interval_seconds,
            total=p.total_slices, next_slice=p.next_slice,
            not_before=now + timedelta(seconds=paced / 2) if paced else None,
        )
    completed = await store.complete_finished_parents(clock())
    summary = {"expired": expired, "resumed": len(claimed), "parents": len(pending),
               "completed": completed}
    log.info("recovery.done", extra=summary)
    return summary


async def settle_orphans(
    store: Store, executor: SliceExecutor, scheduler: SliceScheduler, *, now: datetime,
    older_than: timedelta, limit: int = 1000,
) -> int:
    """Slices left `submitting` while this worker runs (a claim whose answer was lost in an
    outage, an outcome that could not be written, an unexpected error) are settled as at
    start-up, by a lookup at the broker, without waiting for a restart. Slices this process is
    working on are left alone, and so is any slice written within `older_than`. Up to `limit`
    per pass: the executor's admission gate bounds how many are settled at once, oldest first
    (a burst of orphans after an overload is settled in one or two passes, not 100 per pass)."""
    # Read before the query: a slice claimed after this moment is younger than the bound.
    held = executor.held()
    found = await store.claimed_slices(untouched_since=now - older_than, limit=limit)
    orphans = [(p, r) for p, r in found if (r.parent_order_id, r.slice_num) not in held]
    for parent, record in orphans:
        log.warning("slice.orphan_resumed", extra={
            "parent_order_id": record.parent_order_id, "slice_num": record.slice_num,
            "client_order_id": record.client_order_id})
        scheduler.spawn(executor.resume(parent, record))
    return len(orphans)
