"""Canceling a canceled parent's orders still working at the broker (`cancel_working_orders`).

Broker calls are rate-limited and can take a minute for a large parent, so they run here, in
supervised tasks of their own, never inside intake: the cancel's transaction only records that
they are to be done (`cancels.working_orders_canceled` NULL), and a restart resumes what a stop
interrupted. At most `concurrency` cancel calls are in flight at once, so they never take every
broker slot from the slices going out. When the sweep is done, `parent.canceled` reports how
many orders the broker canceled.

A slice that was in flight when its parent was canceled lands later: once it is recorded
`submitted` (`landed`, called by the executor), its order is canceled at the broker at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from worker.brokers.base import Broker
from worker.core.records import SliceRecord
from worker.runtime.clock import Clock
from worker.runtime.dbretry import with_db_retry
from worker.store.repository import Store

log = logging.getLogger(__name__)

# How far back a start looks for orders that landed after their parent's cancel.
LOOK_BACK = timedelta(days=1)


class WorkingOrders:
    def __init__(self, store: Store, broker: Broker, clock: Clock,
                 notify: Callable[[], None] = lambda: None, *, concurrency: int = 2) -> None:
        self.store = store
        self.broker = broker
        self.clock = clock
        self.notify = notify
        self._calls = asyncio.Semaphore(max(1, concurrency))
        # Parents canceled with their working orders in this process's life (or found so at
        # start with a slice in flight): a slice of theirs that lands is canceled at once.
        self._watched: set[str] = set()
        self._tasks: set[asyncio.Task[object]] = set()

    @property
    def busy(self) -> int:
        return len(self._tasks)

    def request(self, parent_id: str) -> None:
        """Cancel the parent's working orders (its cancel is committed)."""
        self._watched.add(parent_id)
        self._spawn(self._sweep(parent_id), parent_id)

    def landed(self, record: SliceRecord, broker_order_id: str) -> None:
        """A slice was recorded `submitted`: cancel its order if its parent asked for that."""
        if record.parent_order_id in self._watched:
            self._spawn(self._cancel_landed(record, broker_order_id), record.parent_order_id)

    async def resume(self) -> int:
        """At start: sweeps a stop interrupted, orders that landed after their parent's cancel
        (their broker cancel may have been cut short), and parents whose in-flight slices may
        still land."""
        self._watched.update(await self.store.watched_in_flight())
        pending = await self.store.pending_working()
        for parent_id in pending:
            self.request(parent_id)
        for record in await self.store.landed_after_cancel(self.clock() - LOOK_BACK):
            if record.parent_order_id not in pending:
                self._spawn(self._cancel_found(record), record.parent_order_id)
        return len(pending)

    async def shutdown(self, within: float) -> None:
        """Let running cancels finish (for up to `within` seconds); what is cut off resumes at
        the next start."""
        if not self._tasks:
            return
        _, cut = await asyncio.wait(set(self._tasks), timeout=within)
        for task in cut:
            task.cancel()
        if cut:
            log.warning("cancel.working_orders_abandoned", extra={"tasks": len(cut)})
            await asyncio.wait(cut)

    # -- the work -----------------------------------------------------------------------------
    def _spawn(self, work: Coroutine[Any, Any, object], parent_id: str) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._reap(done, parent_id))

    def _reap(self, task: asyncio.Task[object], parent_id: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cancel.working_orders_failed", exc_info=task.exception(),
                      extra={"parent_order_id": parent_id})

    async def _sweep(self, parent_id: str) -> None:
        ids: dict[str, object] = {"parent_order_id": parent_id}
        working = await with_db_retry(lambda: self.store.working_slices(parent_id),
                                      clock=self.clock, deadline=None, what="working.read",
                                      ids=ids)
        results = await asyncio.gather(*(self._cancel_found(record) for record in working))
        canceled = sum(results)
        await with_db_retry(lambda: self.store.finish_working(parent_id, canceled, self.clock()),
                            clock=self.clock, deadline=None, what="working.finish", ids=ids)
        self.notify()
        log.info("cancel.working_orders_done", extra={**ids, "looked_up": len(working),
                                                       "canceled": canceled})

    async def _cancel_found(self, record: SliceRecord) -> bool:
        """Look the order up and cancel it if it is still open; a failure is logged, counted
        as not canceled, and the other orders go on."""
        async with self._calls:
            try:
                found = await self.broker.find(record.client_order_id)
                return bool(found is not None and found.is_open
                            and await self.broker.cancel(found.broker_order_id))
            except Exception as exc:
                log.warning("cancel.working_order_failed", extra={
                    **_ids(record), "error": repr(exc)[:200]})
                return False

    async def _cancel_landed(self, record: SliceRecord, broker_order_id: str) -> None:
        async with self._calls:
            try:
                canceled = await self.broker.cancel(broker_order_id)
            except Exception as exc:
                log.warning("cancel.working_order_failed", extra={
                    **_ids(record), "broker_order_id": broker_order_id,
                    "error": repr(exc)[:200]})
                return
        log.info("cancel.landed_order_canceled" if canceled else "cancel.landed_order_closed",
                 extra={**_ids(record), "broker_order_id": broker_order_id})


def _ids(record: SliceRecord) -> dict[str, object]:
    return {"parent_order_id": record.parent_order_id, "slice_num": record.slice_num,
            "client_order_id": record.client_order_id}
