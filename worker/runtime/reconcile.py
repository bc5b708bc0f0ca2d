"""Reconciliation: asking the broker about every order the worker believes is working.

Pushed updates can be missed (the stream was away, the worker was down, a view was parked by a
process that died), so the worker also looks orders up by client_order_id (`broker.find`) and
applies what it hears, exactly as a pushed view (idempotent):
- at start-up and after every Resync of the updates stream: every `submitted` slice;
- every TWAP_RECONCILE_SECONDS: every `submitted` slice without news for that long.
Lookups share the broker-call budget of the working-order cancels (`calls`), so reconciliation
never takes every broker slot from the slices going out.

An order the broker says it does not have (find → None) in two passes one after the other
cannot fill any more: its slice is closed with what it had filled, reason "the broker has no
such order". One answer is not enough: a broker that has just accepted an order, or that
answers from a replica, can say "not found" once for an order that then fills.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from worker.brokers.base import Broker
from worker.brokers.orders import Lifecycle, OrderView
from worker.core.fills import average
from worker.core.records import SliceRecord
from worker.observability.metrics import WorkerMetrics
from worker.runtime.clock import Clock
from worker.runtime.order_updates import OrderUpdates
from worker.store.repository import Store

log = logging.getLogger(__name__)

NO_SUCH_ORDER = "the broker has no such order"
# Orders looked up per pass at most (the rest wait for the next pass).
PASS_LIMIT = 5000


class Reconciler:
    def __init__(self, store: Store, broker: Broker, clock: Clock, metrics: WorkerMetrics,
                 updates: OrderUpdates, *, every: float,
                 calls: asyncio.Semaphore | None = None) -> None:
        self.store = store
        self.broker = broker
        self.clock = clock
        self.metrics = metrics
        self.updates = updates
        self.every = every
        self._calls = calls if calls is not None else asyncio.Semaphore(2)
        self._full_wanted = False
        self._full: asyncio.Task[None] | None = None
        # client_order_id -> when (loop time) the broker first said it has no such order; the
        # second "not found" closes the slice only in a pass started after that.
        self._missing: dict[str, float] = {}

    def resync(self) -> None:
        """Look up every working order soon (coalesced: one pass runs at a time)."""
        self._full_wanted = True
        if self._full is None or self._full.done():
            self._full = asyncio.create_task(self._full_passes())

    async def _full_passes(self) -> None:
        while self._full_wanted:
            self._full_wanted = False
            try:
                await self.reconcile()
            except Exception as exc:  # the periodic pass tries again
                log.warning("reconcile.failed", extra={"error": repr(exc)[:200]})

    async def reconcile(self, *, stale_only: bool = False) -> int:
        """One pass; returns how many orders were looked up."""
        now = self.clock()
        started = asyncio.get_running_loop().time()
        working = await self.store.submitted_slices(limit=PASS_LIMIT)
        if len(working) < PASS_LIMIT:  # forget orders whose slices ended some other way
            ids = {record.client_order_id for record, _ in working}
            self._missing = {k: v for k, v in self._missing.items() if k in ids}
        self.metrics.working_orders.set(len(working))
        oldest = min((at for _, at in working), default=now)
        self.metrics.reconcile_lag.set(max(0.0, (now - oldest).total_seconds()))
        if stale_only:
            cutoff = now - timedelta(seconds=self.every)
            working = [(record, at) for record, at in working if at < cutoff]
        await asyncio.gather(*(self._check(record, started) for record, _ in working))
        if working:
            log.info("reconcile.pass", extra={"looked_up": len(working),
                                              "stale_only": stale_only})
        return len(working)

    async def periodic(self) -> None:
        """The scheduler's job: orders without news for `every` seconds."""
        try:
            await self.reconcile(stale_only=True)
        except Exception as exc:
            log.warning("reconcile.failed", extra={"error": repr(exc)[:200]})

    async def _check(self, record: SliceRecord, started: float) -> None:
        async with self._calls:
            try:
                view = await self.broker.find(record.client_order_id)
            except Exception as exc:  # the next pass asks again
                log.warning("reconcile.lookup_failed", extra={
                    "client_order_id": record.client_order_id, "error": repr(exc)[:200]})
                return
        coid = record.client_order_id
        if view is None:
            first = self._missing.get(coid)
            if first is None or first >= started:  # the first answer, or this pass's own
                self._missing.setdefault(coid, asyncio.get_running_loop().time())
                log.info("reconcile.not_found_once", extra={
                    "client_order_id": coid, "broker_order_id": record.broker_order_id})
                return
            del self._missing[coid]
            log.warning("reconcile.no_such_order", extra={
                "client_order_id": record.client_order_id,
                "broker_order_id": record.broker_order_id})
            view = OrderView(record.client_order_id, record.broker_order_id or "",
                             Lifecycle.CLOSED, record.filled_qty,
                             average(record.fill_notional, record.filled_qty), self.clock(),
                             NO_SUCH_ORDER)
        else:
            self._missing.pop(coid, None)
        await self.updates.apply(view)
