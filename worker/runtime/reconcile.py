"""Reconciliation: asking the broker about every order the worker believes is working.

Pushed updates can be missed (the stream was away, the worker was down, a view was parked by a
process that died), so the worker also looks orders up by client_order_id (`broker.find`) and
applies what it hears, exactly as a pushed view (idempotent):
- at start-up and after every Resync of the updates stream: every `submitted` slice;
- every TWAP_RECONCILE_SECONDS: every `submitted` slice without news for that long (news: any
  update of the order, or a lookup's answer);
- at once, an order of which the stream sent an event the worker cannot read.
A pass looks up at most LOOKUPS_PER_PASS orders, those heard of least recently first.
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
from datetime import datetime, timedelta

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
# Working orders read per pass at most, and looked up per pass at most (the rest wait for
# the next pass): lookups share the broker's rate limit with the sends and must not starve
# them.
PASS_LIMIT = 5000
LOOKUPS_PER_PASS = 500


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
        self._tried: dict[str, datetime] = {}  # when each order was last looked up
        self._looking: set[str] = set()  # single orders being looked up (look_up)
        self._tasks: set[asyncio.Task[None]] = set()

    def resync(self) -> None:
        """Look up every working order soon (coalesced: one pass runs at a time)."""
        self._full_wanted = True
        if self._full is None or self._full.done():
            self._full = asyncio.create_task(self._full_passes())

    def look_up(self, client_order_id: str) -> None:
        """Look one order up now (an event the worker cannot read was heard of it)."""
        if client_order_id in self._looking:
            return
        self._looking.add(client_order_id)
        task = asyncio.create_task(self._look_up(client_order_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _look_up(self, client_order_id: str) -> None:
        try:
            async with self._calls:
                view = await self.broker.find(client_order_id)
            if view is None or view.lifecycle is Lifecycle.UNKNOWN:
                # "not found" once is not enough to close it; the passes go on asking
                log.info("reconcile.lookup_inconclusive", extra={
                    "client_order_id": client_order_id,
                    "lifecycle": None if view is None else view.lifecycle.value})
                return
            await self.updates.apply(view)
        except Exception as exc:  # the passes ask again
            log.warning("reconcile.lookup_failed", extra={
                "client_order_id": client_order_id, "error": repr(exc)[:200]})
        finally:
            self._looking.discard(client_order_id)

    async def _full_passes(self) -> None:
        while self._full_wanted:
            self._full_wanted = False
            # Every order not heard of since the resync, a capped pass at a time (each one
            # looked up is then newer than `since`, so left out of the next).
            since = self.clock()
            try:
                more = True
                while more:
                    more = await self.reconcile(heard_before=since) >= LOOKUPS_PER_PASS
            except Exception as exc:  # the periodic pass tries again
                log.warning("reconcile.failed", extra={"error": repr(exc)[:200]})

    async def reconcile(self, *, stale_only: bool = False,
                        heard_before: datetime | None = None) -> int:
        """One pass: the orders heard of least recently, at most LOOKUPS_PER_PASS of them;
        `stale_only`: only those without news for `every` seconds; `heard_before`: only those
        without news since then. Returns how many orders were looked up."""
        now = self.clock()
        started = asyncio.get_running_loop().time()
        working = await self.store.submitted_slices(limit=PASS_LIMIT)
        if len(working) < PASS_LIMIT:  # forget orders whose slices ended some other way
            self._forget_all_but({record.client_order_id for record, _ in working})
        news = self.updates.news
        # An order's last news: its row's last write, or what was heard of it since.
        heard = [(record, max(at, news.get(record.client_order_id, at)))
                 for record, at in working]
        self.metrics.working_orders.set(len(working))
        oldest = min((at for _, at in heard), default=now)
        self.metrics.reconcile_lag.set(max(0.0, (now - oldest).total_seconds()))
        cutoff = now - timedelta(seconds=self.every) if stale_only else heard_before
        # A lookup that failed is no news, but it is not repeated by the passes of one resync.
        due = [(record, max(at, self._tried.get(record.client_order_id, at)))
               for record, at in heard]
        if cutoff is not None:
            due = [(record, at) for record, at in due if at < cutoff]
        due.sort(key=lambda pair: pair[1])
        chosen = [record for record, _ in due[:LOOKUPS_PER_PASS]]
        for record in chosen:
            self._tried[record.client_order_id] = now
        await asyncio.gather(*(self._check(record, started) for record in chosen))
        if chosen:
            log.info("reconcile.pass", extra={"looked_up": len(chosen), "due": len(due),
                                              "stale_only": stale_only})
        return len(chosen)

    def _forget_all_but(self, working: set[str]) -> None:
        self._missing = {k: v for k, v in self._missing.items() if k in working}
        self._tried = {k: v for k, v in self._tried.items() if k in working}
        news = self.updates.news
        for coid in [k for k in news if k not in working]:
            del news[coid]

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
            self.updates.heard(coid)  # an answer: news, though not of a fill
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
