"""Request intake: a batch of deliveries → one transaction → schedule → ack.

Validation and planning are pure (worker.core.intake); the store applies the whole batch in
one transaction (parents, slices, events, replies, dead letters); only after the commit are
parents scheduled and messages acked. Broker work a cancel asks for runs afterwards, outside
intake (working_orders.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from twap_schemas.common import SliceStatus
from twap_schemas.requests import RequestContext
from worker.core.intake import (
    CancelOrder,
    Inbound,
    IntakeItem,
    Invalid,
    PlannedSubmit,
    classify,
)
from worker.core.risk import needs_reference
from worker.messaging.dispositions import Disposition
from worker.observability.metrics import WorkerMetrics
from worker.runtime.clock import Clock
from worker.runtime.risk import LimitsCache, NoQuotes, QuoteSource, references
from worker.runtime.scheduling import SliceScheduler
from worker.runtime.working_orders import WorkingOrders
from worker.settings import Settings
from worker.store.engine import is_outage
from worker.store.intake import IntakeResult, Screening
from worker.store.repository import Store

log = logging.getLogger(__name__)

# A batch planned longer ago than this when its transaction starts is planned again: its
# slices would otherwise be due from a stale "now", the first ones already late (or expired).
REPLAN_AFTER = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch parsed and planned ahead of its transaction, with the parents it submits or
    cancels (`keys`: batches sharing one never overlap)."""

    now: datetime
    items: list[IntakeItem]
    keys: frozenset[str]

    @classmethod
    def of(cls, now: datetime, items: list[IntakeItem]) -> Prepared:
        keys: set[str] = set()
        for item in items:
            if isinstance(item, PlannedSubmit):
                keys.add(item.parent.parent_order_id)
            elif isinstance(item, CancelOrder):
                keys.add(item.request.parent_order_id)
        return cls(now, items, frozenset(keys))


class IntakeService:
    def __init__(
        self,
        store: Store,
        scheduler: SliceScheduler,
        working: WorkingOrders,
        settings: Settings,
        requests_queue: str,
        clock: Clock,
        notify: Callable[[], None] = lambda: None,
        *,
        metrics: WorkerMetrics | None = None,
        quotes: QuoteSource | None = None,
        limits: LimitsCache | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.authz = settings.authz == "on"
        self.quotes = quotes if quotes is not None else NoQuotes("no quote source configured")
        self.limits = limits if limits is not None else LimitsCache(store)
        self.store = store
        self.scheduler = scheduler
        self.working = working
        self.settings = settings
        self.requests_queue = requests_queue
        self.clock = clock
        self.notify = notify

    def prepare(self, batch: list[Inbound], first_seen: datetime | None = None) -> Prepared:
        """Parse, validate and plan every message: pure CPU, no I/O, so it can run while the
        batch before is still being written."""
        now = self.clock()
        context = self._context(now)
        return Prepared.of(now, [classify(inbound, context, now, first_seen=first_seen)
                                 for inbound in batch])

    def _context(self, now: datetime) -> RequestContext:
        return RequestContext(
            limits=self.settings.limits,
            now=now,
            misfire_grace=timedelta(seconds=self.settings.misfire_grace_seconds),
        )

    async def handle(self, batch: list[Inbound],
                     prepared: Prepared | None = None) -> list[Disposition]:
        """Decide every message of the batch (prepared ahead, or now); the caller acks or
        requeues accordingly. The clock is read here, as the transaction starts: a batch
        prepared too long ago is planned again (keeping the time its trade dates came from)."""
        if prepared is None:
            prepared = self.prepare(batch)
        elif (waited := self.clock() - prepared.now) > REPLAN_AFTER:
            log.info("intake.replanned", extra={"batch": len(batch),
                                                "waited_s": waited.total_seconds()})
            prepared = self.prepare(batch, first_seen=prepared.now)
        return await self._apply(batch, prepared.items, prepared.now)

    def _redate(self, now: datetime) -> Callable[[PlannedSubmit, datetime], IntakeItem]:
        """Plan a submit again with the time it was first seen (a redelivery)."""
        context = self._context(now)

        def redate(item: PlannedSubmit, first_seen: datetime) -> IntakeItem:
            return classify(item.inbound, context, now, first_seen=first_seen)

        return redate

    async def _apply(self, batch: list[Inbound], items: list[IntakeItem],
                     now: datetime) -> list[Disposition]:
        try:
            results = await self.store.apply_intake(items, now, self.requests_queue,
                                                    self._redate(now),
                                                    await self._screening(items))
        except Exception as exc:
            if is_outage(exc):
                log.warning("intake.database_unavailable", extra={"batch": len(batch),
                                                                   "error": str(exc)[:200]})
                self.metrics.request("retried", len(batch))
                return [Disposition.RETRY] * len(batch)
            if len(batch) == 1:
                log.exception("intake.failed", extra=_meta(batch[0]))
                self.metrics.request("requeued")
                return [Disposition.REQUEUE]  # the delivery limit dead-letters a poison message
            log.warning("intake.batch_failed_splitting", extra={"batch": len(batch)})
            out: list[Disposition] = []
            for inbound, item in zip(batch, items, strict=True):
                out.extend(await self._apply([inbound], [item], now))
            return out
        dispositions: list[Disposition] = []
        for item, result in zip(items, results, strict=True):
            dispositions.append(await self._after_commit(item, result))
        self.notify()
        return dispositions

    async def _screening(self, items: list[IntakeItem]) -> Screening:
        """Authorization on or off, and the reference prices the limits of the batch's new
        parents need (fetched before its transaction: no quote is awaited holding locks)."""
        submits = [i.parent for i in items if isinstance(i, PlannedSubmit)]
        if not submits:
            return Screening(self.authz)
        limits = await self.limits.of({p.strategy_id for p in submits})
        symbols = {p.symbol for p in submits
                   if needs_reference(limits[p.strategy_id], p.limit_price, p.stop_price)}
        return Screening(self.authz, await references(self.quotes, symbols) if symbols else {})

    async def _after_commit(self, item: IntakeItem, result: IntakeResult) -> Disposition:
        """Schedule what the commit accepted. Should that fail, the message goes back to the
        queue: committed, its redelivery is a duplicate, and a duplicate arms its parent."""
        meta = _meta(item.inbound)
        self.metrics.request(result.outcome)
        try:
            if result.accepted is not None:
                parent, slices = result.accepted
                self.scheduler.add(
                    parent.parent_order_id, start=parent.start_at,
                    interval=parent.interval_seconds, total=parent.total_slices,
                )
                log.info("request.accepted", extra={
                    **meta, "parent_order_id": parent.parent_order_id, "slices": len(slices)})
            elif result.cancel is not None:
                cancel = result.cancel
                assert cancel.parent is not None
                self.scheduler.drop(cancel.parent.parent_order_id)
                self.metrics.slices_ended(SliceStatus.CANCELED, len(cancel.canceled))
                if cancel.sweep:
                    self.working.request(cancel.parent.parent_order_id)
                log.info("request.canceled", extra={
                    **meta, "parent_order_id": result.parent_order_id,
                    "canceled": cancel.canceled_slices, "in_flight": cancel.in_flight})
            elif result.outcome == "duplicate" and result.parent_order_id is not None:
                await self._arm_if_idle(result.parent_order_id)
                log.info("request.duplicate", extra={**meta,
                                                     "parent_order_id": result.parent_order_id})
            elif isinstance(item, Invalid):
                log.warning("request.rejected", extra={**meta, "kind": item.kind,
                                                        "errors": [e.msg for e in item.errors][:5]})
            else:
                log.info(f"request.{result.outcome}", extra={
                    **meta, "parent_order_id": result.parent_order_id})
        except Exception:
            log.exception("intake.after_commit_failed", extra={
                **meta, "parent_order_id": result.parent_order_id})
            return Disposition.REQUEUE
        return Disposition.ACK

    async def _arm_if_idle(self, parent_id: str) -> None:
        """A duplicate of an active parent that has no scheduler job (its first delivery was
        committed but never scheduled: scheduling failed, or the commit's answer was lost)
        arms it from the database."""
        if self.scheduler.armed(parent_id):
            return
        pending = await self.store.pending_parent(parent_id)
        if pending is None:
            return
        self.scheduler.add(parent_id, start=pending.start_at, interval=pending.interval_seconds,
                           total=pending.total_slices, next_slice=pending.next_slice)
        log.warning("request.duplicate_armed_parent", extra={
            "parent_order_id": parent_id, "next_slice": pending.next_slice})


def _meta(inbound: Inbound) -> dict[str, object]:
    return {"message_id": inbound.message_id, "correlation_id": inbound.correlation_id}
