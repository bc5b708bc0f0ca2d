"""Canceling a canceled parent's orders still working at the broker (`cancel_working_orders`).

Broker calls are rate-limited and can take a minute for a large parent, so they run here, in
supervised tasks of their own, never inside intake: the cancel's transaction only records that
they are to be done (`cancels.working_orders_canceled` NULL), and a restart resumes what a stop
interrupted. At most `concurrency` cancel calls are in flight at once, so they never take every
broker slot from the slices going out. When the sweep is done, `parent.canceled` reports how
many orders the broker canceled.

A slice that was in flight when its parent was canceled lands later: once it is recorded
`submitted` (`landed`, called by the executor), its order is canceled at the broker at once.

The ends of contract v2 go through the same guarded, rate-limited path (`close`): with
`slice_end: cancel`, a slice's order still working when the next slice comes due
(`end_earlier`, called by the executor before it sizes that slice, so catch-up sees the
outcome) or at the parent's end; with `keep_working_after_end: false`, every order still
working at the parent's end (`end_due`, a periodic pass, also the backstop of the first).
A close cancels the order, then waits (bounded) for its final view and applies it: the slice
ends `closed`, or `filled` when the fill won the race with the cancel. An outcome not known
within the wait is left to the order updates and reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from twap_schemas.common import SliceEnd
from worker.brokers.base import Broker
from worker.brokers.orders import OrderView
from worker.core.records import ParentRecord, SliceRecord
from worker.core.slice_end import order_deadline
from worker.runtime.clock import Clock
from worker.runtime.dbretry import with_db_retry
from worker.runtime.order_updates import OrderUpdates
from worker.store.repository import Store

log = logging.getLogger(__name__)

# How far back a start looks for orders that landed after their parent's cancel.
LOOK_BACK = timedelta(days=1)
# How long a close waits for the order's final view after its cancel, looking it up again
# every so often (doubling from the first wait).
OUTCOME_WAIT = 2.0
FIRST_LOOK = 0.01

SLICE_END = "slice end: canceled when the next slice came due"
PARENT_END = "parent end: canceled at the end of the parent's duration"
CANCELED = "parent canceled with cancel_working_orders"


class WorkingOrders:
    def __init__(self, store: Store, broker: Broker, clock: Clock,
                 notify: Callable[[], None] = lambda: None, *, concurrency: int = 2,
                 updates: OrderUpdates | None = None) -> None:
        self.store = store
        self.broker = broker
        self.clock = clock
        self.notify = notify
        self.calls = self._calls = asyncio.Semaphore(max(1, concurrency))
        self.updates = updates  # applies the final views (without it: left to the stream)
        # The close under way of each order (by client_order_id): a second closer (the
        # executor's end_earlier and the periodic end_due meet at a slice's end) awaits its
        # outcome instead of going on as if the order were closed.
        self._closing: dict[str, asyncio.Future[bool]] = {}
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
        """Close the order of a canceled parent's slice (see `close`)."""
        return await self.close(record, CANCELED)

    async def _cancel_landed(self, record: SliceRecord, broker_order_id: str) -> None:
        canceled = await self.close(record, CANCELED)
        log.info("cancel.landed_order_canceled" if canceled else "cancel.landed_order_closed",
                 extra={**_ids(record), "broker_order_id": broker_order_id})

    # -- the ends of slices and parents -------------------------------------------------------
    async def end_earlier(self, parent: ParentRecord, slice_num: int) -> ParentRecord:
        """slice_end cancel: close the parent's orders of slices before `slice_num` still
        working; returns the parent as it is now (its fills after those outcomes)."""
        if parent.slice_end is not SliceEnd.CANCEL or parent.working_qty <= 0 or slice_num == 0:
            return parent
        pid = parent.parent_order_id
        working = [r for r in await self.store.working_slices(pid) if r.slice_num < slice_num]
        if not working:
            return parent
        await asyncio.gather(*(self.close(record, SLICE_END) for record in working))
        return await self.store.get_parent(pid) or parent

    async def end_due(self) -> int:
        """The periodic pass: close every working order past its deadline (core.slice_end);
        returns how many closes it started."""
        now = self.clock()
        started = 0
        for parent, record in await self.store.working_orders():
            deadline = order_deadline(parent, record.slice_num)
            if deadline is None or now < deadline or record.client_order_id in self._closing:
                continue
            last = record.slice_num >= parent.total_slices - 1
            reason = (SLICE_END if parent.slice_end is SliceEnd.CANCEL and not last
                      and deadline < now else PARENT_END)
            self._spawn(self.close(record, reason), parent.parent_order_id)
            started += 1
        return started

    async def close(self, record: SliceRecord, reason: str) -> bool:
        """Cancel the slice's order if it is still open, then apply its final view (waiting a
        bounded time for it). True when the broker accepted the cancel. A failure is logged
        and counted as not canceled; the other orders go on. A close of an order already
        being closed waits for that close and returns its answer."""
        coid = record.client_order_id
        running = self._closing.get(coid)
        if running is not None:
            # shield: a waiter that is cancelled must not cancel the close it waits for
            return await asyncio.shield(running)
        outcome: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._closing[coid] = outcome
        canceled = False
        try:
            canceled = await self._close(record, reason)
            return canceled
        finally:
            del self._closing[coid]
            outcome.set_result(canceled)  # also when this close was cut off: waiters go on

    async def _close(self, record: SliceRecord, reason: str) -> bool:
        coid = record.client_order_id
        try:
            async with self._calls:
                found = await self.broker.find(coid)
                if found is None:
                    return False
                if found.ended:
                    await self._apply(found)
                    return False
                if self.updates is not None:
                    self.updates.closing(coid, reason)
                canceled = await self.broker.cancel(found.broker_order_id)
            await self._outcome(record)
            return canceled
        except Exception as exc:
            log.warning("cancel.working_order_failed", extra={
                **_ids(record), "error": repr(exc)[:200]})
            return False

    async def _outcome(self, record: SliceRecord) -> None:
        """Look the order up until it has ended (for up to OUTCOME_WAIT), and apply it."""
        deadline = asyncio.get_running_loop().time() + OUTCOME_WAIT
        wait = FIRST_LOOK
        while True:
            async with self._calls:
                view = await self.broker.find(record.client_order_id)
            if view is not None and view.ended:
                await self._apply(view)
                return
            if asyncio.get_running_loop().time() + wait > deadline:
                log.info("cancel.outcome_pending", extra=_ids(record))
                return
            await asyncio.sleep(wait)
            wait = min(wait * 2, 0.25)

    async def _apply(self, view: OrderView) -> None:
        if self.updates is not None:
            await self.updates.apply(view)


def _ids(record: SliceRecord) -> dict[str, object]:
    return {"parent_order_id": record.parent_order_id, "slice_num": record.slice_num,
            "client_order_id": record.client_order_id}
