"""The composition root: build every part from the settings, start in order, stop in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from datetime import datetime, timedelta

from twap_schemas.common import SliceStatus
from worker.brokers.base import Broker
from worker.brokers.factory import build_broker
from worker.core.intake import Inbound
from worker.messaging.consumer import BatchingConsumer, ControlConsumer
from worker.messaging.dispositions import Disposition
from worker.messaging.link import AmqpLink
from worker.messaging.relay import OutboxRelay
from worker.messaging.topology import Names
from worker.observability.broker import TimedBroker
from worker.observability.endpoints import build_http_server
from worker.observability.gcpause import GcPauses, reclaim, reclaim_due
from worker.observability.heap import can_trim, pin_mmap_threshold, trim_due, trim_heap
from worker.observability.metrics import WorkerMetrics
from worker.observability.snapshot import Snapshot
from worker.runtime.admission import AdmissionGate
from worker.runtime.clock import Clock, utcnow
from worker.runtime.control import ControlService
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.runtime.intake import IntakeService, Prepared
from worker.runtime.order_updates import OrderUpdates
from worker.runtime.reconcile import Reconciler
from worker.runtime.recovery import recover, settle_orphans
from worker.runtime.risk import LimitsCache, SliceRisk, quotes_of
from worker.runtime.scheduling import SliceScheduler
from worker.runtime.working_orders import WorkingOrders
from worker.settings import Settings, mask_url
from worker.store.gauge_ops import StoreGauges, read_gauges
from worker.store.leadership import CHECK_EVERY, Leadership
from worker.store.migrations import current_revision, head_revision
from worker.store.repository import Store

log = logging.getLogger(__name__)

# How often orders past their slice's or parent's end are looked for (the executor ends the
# previous slice's order itself when the next comes due; this pass is the rest and the backstop).
ORDER_ENDS_SECONDS = 1.0
# First deliveries are kept this long (request_receipts): a redelivery comes much sooner.
RECEIPTS_KEPT = timedelta(days=2)
RECEIPTS_PRUNE_EVERY = timedelta(minutes=10)
# A `submitting` slice nobody in this process holds and nothing wrote for this long is settled
# by the sweeper (looked up at the broker); well inside the default grace, so it can still go.
ORPHAN_AFTER = timedelta(seconds=10)


class SchemaNotReady(RuntimeError):
    pass


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Worker:
    """One worker process. `run()` until `stop()`; tests drive it in-process the same way."""

    def __init__(self, settings: Settings, *, broker: Broker | None = None,
                 clock: Clock = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.names = Names(settings.namespace)
        db_url = settings.database_url.get_secret_value()
        self.store = Store.from_url(db_url, pool_size=settings.db_pool_size)
        self.broker = broker or build_broker(settings)
        self.leadership = Leadership(db_url, settings.namespace)
        self.store.fence_claims(lambda: self.leadership.session_pid)  # README, Guarantees
        self.relay = OutboxRelay(self.store, batch=settings.outbox_batch,
                                 gather=settings.outbox_gather_ms / 1000)
        self.metrics = WorkerMetrics()
        self.store.on_bad_view = self.metrics.bad_broker_views.inc
        timed_broker = TimedBroker(self.broker, self.metrics)
        policy = ExecutionPolicy(
            attempts=settings.retry_attempts,
            first_wait=settings.retry_wait_seconds,
            wait_cap=settings.retry_wait_cap_seconds,
            grace=timedelta(seconds=settings.misfire_grace_seconds),
            breaker_max_failures=settings.breaker_max_failures,
        )
        # Pre-trade risk: the reference price is the broker's quote; limits are cached a
        # moment and read again once a limits.set lands here.
        quotes = quotes_of(self.broker)
        self.limits = LimitsCache(self.store)
        self.risk = SliceRisk(self.store, quotes, clock, limits=self.limits,
                              quote_timeout=settings.quote_timeout_seconds)
        # The broker's order updates applied to the store; reconciliation by lookups.
        self.updates = OrderUpdates(self.store, timed_broker, clock, self.metrics,
                                    self.relay.notify, on_resync=self._resync)
        self.working = WorkingOrders(self.store, timed_broker, clock, self.relay.notify_now,
                                     updates=self.updates)
        self.reconciler = Reconciler(self.store, timed_broker, clock, self.metrics, self.updates,
                                     every=settings.reconcile_seconds, calls=self.working.calls)
        self.updates.on_unknown = self._look_up
        self.executor = SliceExecutor(self.store, timed_broker, policy, clock, self.relay.notify,
                                      metrics=self.metrics,
                                      leading=self.leadership.leading,
                                      landed=self.working.landed,
                                      follow=self.updates,
                                      gate=AdmissionGate(settings.in_flight_limit),
                                      prepare=self.working.end_earlier,
                                      risk=self.risk)
        self.scheduler = SliceScheduler(self.executor.fire, clock)
        self.intake = IntakeService(self.store, self.scheduler, self.working, settings,
                                    self.names.requests, clock, self.relay.notify_now,
                                    metrics=self.metrics, quotes=quotes, limits=self.limits)
        self.control = ControlService(self.store, self.names.control, clock,
                                      self.relay.notify_now,
                                      metrics=self.metrics, authz=settings.authz == "on",
                                      limits_changed=self.limits.forget)
        self.requests_consumer = BatchingConsumer(
            self._intake, size=settings.batch_size, wait=settings.batch_wait_ms / 1000,
            requeue_delay=settings.requeue_delay_seconds, prepare=self.intake.prepare,
            concurrency=settings.intake_concurrency, poll=settings.intake_poll_seconds,
        )
        self.control_consumer = ControlConsumer(self.control.handle,
                                                settings.requeue_delay_seconds)
        amqp_url = settings.amqp_url.get_secret_value()
        self.link = AmqpLink(amqp_url, mask_url(amqp_url), self.names, self.relay,
                             self.requests_consumer, self.control_consumer, settings.prefetch)
        self._stopping = asyncio.Event()
        self._receipts_pruned_at: datetime | None = None
        self.active = asyncio.Event()
        self.recovered = asyncio.Event()
        self._reclaimed_at = time.monotonic()
        # Work the heap is trimmed after (_trim_heap): request batches handled, the executor's
        # bursts; None: a trim is owed whatever the counts (after a reclaim).
        self._batches = 0
        self._batches_open = 0
        self._trimmed_after: tuple[int, int] | None = (0, 0)
        # /metrics, /healthz, /readyz; None when the port is 0
        self.http = build_http_server(self, settings.http_host, settings.http_port)

    def stop(self) -> None:
        self._stopping.set()

    def _resync(self) -> None:
        if self.leadership.leading():
            self.reconciler.resync()

    def _look_up(self, client_order_id: str) -> None:
        if self.leadership.leading():
            self.reconciler.look_up(client_order_id)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- what observability reads (observability.snapshot.Observed) ------------------------
    def snapshot(self) -> Snapshot:
        return Snapshot(
            stopping=self.stopping,
            leading=self.active.is_set(),
            amqp_connected=self.link.connected,
            consuming=self.requests_consumer.attached,
            requests_queue=self.names.requests,
            scheduler_running=self.scheduler.running,
            active_parents=self.scheduler.active_parents,
            in_flight=self.executor.gate.in_use,
            waiting=self.executor.gate.waiting,
            published=self.relay.published,
        )

    async def ping_database(self) -> str:
        await self.store.ping()
        return self.store.dialect

    async def read_gauges(self) -> StoreGauges:
        return await read_gauges(self.store)

    async def check_schema(self) -> None:
        url = self.settings.database_url.get_secret_value()
        current, head = await current_revision(self.store.engine), head_revision(url)
        if current != head:
            raise SchemaNotReady(
                f"database schema is at {current or 'nothing'}, the worker needs {head}: "
                f"run `twap migrate` first ({mask_url(url)})"
            )

    async def run(self) -> None:
        """Start in order, run until stop(), drain and close in reverse order."""
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.store.close)
            stack.push_async_callback(self.broker.close)
            await self.check_schema()
            if self.settings.authz == "on":
                log.info("worker.authz_on", extra={"authz": "on"})
            else:
                log.warning("worker.authz_off", extra={
                    "authz": "off", "note": "authorization is off: any publisher may submit "
                    "for any strategy and send control commands (TWAP_AUTHZ=on to check "
                    "grants)"})
            if self.http is not None:  # before leadership: a standby answers its probes too
                await self.http.start()
                stack.push_async_callback(self.http.close)
            stack.push_async_callback(self.leadership.release)
            if not await self.leadership.acquire(self._stopping):
                return
            self.active.set()
            # From the first moment: the lease must be renewed while recovery runs too.
            watch_task = asyncio.create_task(self._watch_leadership())
            stack.push_async_callback(_cancel, watch_task)
            log.info("worker.active", extra={"namespace": self.names.namespace,
                                              "broker": self.broker.name,
                                              "database": self.store.dialect,
                                              "in_flight_limit": self.executor.gate.limit})
            self.scheduler.start()
            # Pushed so that they run in reverse on the way out: in-flight slices finish,
            # then the outbox drains, then the AMQP link closes.
            stack.push_async_callback(self.link.close)
            relay_task = asyncio.create_task(self.relay.run(self._stopping))
            stack.push_async_callback(self._finish_relay, relay_task)
            stack.push_async_callback(self.working.shutdown,
                                      self.settings.shutdown_timeout_seconds)
            # Order updates from the broker, from the start: its first item (Resync) looks up
            # every working order (fills that happened while the worker was down).
            updates_task = asyncio.create_task(self.updates.run(self._stopping))
            stack.push_async_callback(self.updates.drain)
            stack.push_async_callback(_cancel, updates_task)
            stack.push_async_callback(self.executor.drain)
            stack.push_async_callback(self.scheduler.shutdown,
                                      self.settings.shutdown_timeout_seconds)
            # Every claim size and IN-list length compiled now, not on the dispatch path nor
            # as a step in memory weeks later (store/warmup.py).
            started = time.perf_counter()
            try:
                warmed = await self.store.warm_up(self.clock())
            except Exception as exc:  # an optimisation: the first batches compile their own
                log.warning("store.warm_up_failed", extra={"error": repr(exc)})
            else:
                log.info("store.warmed", extra={"statements": warmed, "elapsed_ms": round(
                    (time.perf_counter() - started) * 1000, 1)})
            await self.working.resume()  # before recovery settles slices that may land
            recovered = await recover(self.store, self.executor, self.scheduler,
                                      timedelta(seconds=self.settings.misfire_grace_seconds),
                                      self.clock)
            self.metrics.slices_ended(SliceStatus.EXPIRED, recovered["expired"])
            self.recovered.set()
            # What is alive now (modules, settings, the rebuilt schedule) lives as long as the
            # process: this full pass freezes it (GcPauses does after every full pass), out of
            # later passes, which would otherwise stop the loop for tens of milliseconds.
            pauses = GcPauses(self.metrics.gc_pauses)
            pauses.install()
            pin_mmap_threshold()  # large buffers off the heap: RSS stays flat over weeks
            stack.callback(pauses.remove)
            gc.collect()
            self._log_stats()
            self.scheduler.every("sweep", self.settings.sweep_seconds, self._sweep)
            self.scheduler.every("reconcile", self.settings.reconcile_seconds,
                                 self._reconcile)
            self.scheduler.every("order_ends", ORDER_ENDS_SECONDS, self._order_ends)
            if self.settings.heap_trim_seconds > 0 and can_trim():
                self.scheduler.every("heap_trim", self.settings.heap_trim_seconds,
                                     self._trim_heap)
            if self.settings.stats_interval_seconds > 0:
                self.scheduler.every("stats", self.settings.stats_interval_seconds,
                                     self._periodic_stats)
            connect_task = asyncio.create_task(self.link.connect(self._stopping))
            intake_task = asyncio.create_task(self.requests_consumer.run(self._stopping))
            await self._stopping.wait()
            log.info("worker.draining")
            await connect_task
            await self.link.stop_consuming()
            await intake_task  # finishes the batches already received, acks them
        log.info("worker.stopped")

    async def _finish_relay(self, task: asyncio.Task[None]) -> None:
        self.relay.notify()
        try:
            await asyncio.wait_for(task, timeout=10)
            while await self.relay.relay_once():
                pass
        except Exception as exc:  # what is left waits in the outbox for the next start
            log.warning("outbox.final_drain_incomplete", extra={"error": repr(exc)[:200]})

    async def _intake(self, batch: list[Inbound], prepared: Prepared | None) -> list[Disposition]:
        if not self.leadership.leading():  # hold the requests until the lock is ours again
            return [Disposition.RETRY] * len(batch)
        self._batches_open += 1
        try:
            return await self.intake.handle(batch, prepared)
        finally:
            self._batches_open -= 1
            self._batches += 1

    def _next_due_in(self) -> float | None:
        """Seconds to the next slice (None: none armed); a scan of the schedule."""
        due = self.scheduler.next_due()
        return None if due is None else (due - self.clock()).total_seconds()

    def _reclaim_memory(self) -> None:
        """What the collector's freeze kept and became garbage since, freed at a quiet moment
        (observability.gcpause.reclaim): memory stays flat over weeks."""
        now = time.monotonic()
        if now - self._reclaimed_at < self.settings.gc_reclaim_seconds:
            return  # nearly always: no scan of the schedule for the next due slice
        if not reclaim_due(now - self._reclaimed_at, self.settings.gc_reclaim_seconds,
                           self.executor.gate.in_use, self._next_due_in()):
            return
        started = time.perf_counter()
        found = reclaim()
        self._reclaimed_at = time.monotonic()
        log.info("gc.reclaimed", extra={"unreachable": found, "pause_ms": round(
            (time.perf_counter() - started) * 1000, 1)})
        self._trimmed_after = None  # what the collection freed goes back at the next trim

    async def _trim_heap(self) -> None:
        """The C heap's free pages given back once after each stretch of work, at its first
        quiet moment (observability.heap)."""
        await asyncio.sleep(0)  # a slice the scheduler fired in this same pass starts first
        work = (self.executor.bursts, self._batches)
        if not trim_due(work != self._trimmed_after,
                        self.executor.gate.in_use + self._batches_open, self._next_due_in):
            return
        self._trimmed_after = work
        started = time.perf_counter()
        released = trim_heap()
        pause = time.perf_counter() - started
        self.metrics.heap_trims.observe(pause)
        log.debug("heap.trimmed", extra={"released": released,
                                         "pause_ms": round(pause * 1000, 2)})

    async def _sweep(self) -> None:
        self._reclaim_memory()
        if not self.leadership.leading():
            return
        try:
            grace = timedelta(seconds=self.settings.misfire_grace_seconds)
            expired = await self.store.expire_overdue(self.clock(), grace)
            self.metrics.slices_ended(SliceStatus.EXPIRED, expired)
            completed = await self.store.complete_closed_parents(self.clock())
            await self._prune_receipts()
            if expired or completed:
                self.relay.notify()
            await settle_orphans(self.store, self.executor, self.scheduler, now=self.clock(),
                                 older_than=ORPHAN_AFTER)
        except Exception as exc:
            log.warning("sweep.failed", extra={"error": repr(exc)[:200]})

    async def _reconcile(self) -> None:
        if self.leadership.leading():
            await self.reconciler.periodic()

    async def _order_ends(self) -> None:
        """Orders past their slice's or parent's end are canceled (core.slice_end)."""
        if not self.leadership.leading():
            return
        try:
            await self.working.end_due()
        except Exception as exc:
            log.warning("order_ends.failed", extra={"error": repr(exc)[:200]})

    async def _prune_receipts(self) -> None:
        now = self.clock()
        last = self._receipts_pruned_at
        if last is not None and now - last < RECEIPTS_PRUNE_EVERY:
            return
        self._receipts_pruned_at = now
        while await self.store.prune_receipts(now - RECEIPTS_KEPT, limit=5000) == 5000:
            pass

    def _log_stats(self) -> None:
        gate = self.executor.gate
        log.info("scheduler.stats", extra={**self.scheduler.stats(), "claimed": gate.in_use,
                                           "waiting": gate.waiting})

    async def _periodic_stats(self) -> None:
        self._log_stats()

    async def _watch_leadership(self) -> None:
        """Lost the lock's session, or it stopped answering: claim and accept nothing until
        the lock is ours again on a new session; if another worker has it by then, stop."""
        while True:
            await asyncio.sleep(CHECK_EVERY)
            if await self.leadership.still_held():
                continue
            log.error("leadership.lost")
            regained = await self.leadership.regain()
            while regained is None:  # the database is still away
                await asyncio.sleep(1.0)
                regained = await self.leadership.regain()
            if not regained:
                log.error("leadership.taken_over")
                self.stop()
                return
            log.warning("leadership.regained")
