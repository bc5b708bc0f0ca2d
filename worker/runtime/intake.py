"""Request intake: a batch of deliveries → one transaction → schedule → ack.

Validation and planning are pure (worker.core.intake); the store applies the whole batch in
one transaction (parents, slices, events, replies, dead letters); only after the commit are
parents scheduled and messages acked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from schemas.common import SliceStatus
from schemas.requests import RequestContext
from worker.brokers.base import Broker
from worker.core import events
from worker.core.intake import (
    CancelOrder,
    Inbound,
    IntakeItem,
    Invalid,
    PlannedSubmit,
    classify,
)
from worker.observability.metrics import WorkerMetrics
from worker.runtime.clock import Clock
from worker.runtime.scheduling import SliceScheduler
from worker.settings import Settings
from worker.store.engine import is_outage
from worker.store.intake_ops import CancelResult, IntakeResult
from worker.store.repository import Store

log = logging.getLogger(__name__)


class Disposition(Enum):
    ACK = "ack"
    REQUEUE = "requeue"  # back to the queue; counts towards the delivery limit (poison)
    RETRY = "retry"  # the database is away: hold the message and try again, it is not at fault


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
        broker: Broker,
        settings: Settings,
        requests_queue: str,
        clock: Clock,
        notify: Callable[[], None] = lambda: None,
        *,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.store = store
        self.scheduler = scheduler
        self.broker = broker
        self.settings = settings
        self.requests_queue = requests_queue
        self.clock = clock
        self.notify = notify

    def prepare(self, batch: list[Inbound]) -> Prepared:
        """Parse, validate and plan every message: pure CPU, no I/O, so it can run while the
        batch before is still being written."""
        now = self.clock()
        context = RequestContext(
            limits=self.settings.limits,
            now=now,
            misfire_grace=timedelta(seconds=self.settings.misfire_grace_seconds),
        )
        return Prepared.of(now, [classify(inbound, context, now) for inbound in batch])

    async def handle(self, batch: list[Inbound],
                     prepared: Prepared | None = None) -> list[Disposition]:
        """Decide every message of the batch (prepared ahead, or now); the caller acks or
        requeues accordingly."""
        if prepared is None:
            prepared = self.prepare(batch)
        return await self._apply(batch, prepared.items, prepared.now)

    async def _apply(self, batch: list[Inbound], items: list[IntakeItem],
                     now: datetime) -> list[Disposition]:
        try:
            results = await self.store.apply_intake(items, now, self.requests_queue)
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
        for item, result in zip(items, results, strict=True):
            await self._after_commit(item, result)
        self.notify()
        return [Disposition.ACK] * len(batch)

    async def _after_commit(self, item: IntakeItem, result: IntakeResult) -> None:
        meta = _meta(item.inbound)
        self.metrics.request(result.outcome)
        if result.accepted is not None:
            parent, slices = result.accepted
            self.scheduler.add(
                parent.parent_order_id, start=parent.start_at,
                interval=parent.interval_seconds, total=parent.total_slices,
            )
            log.info("request.accepted", extra={**meta, "parent_order_id": parent.parent_order_id,
                                                 "slices": len(slices)})
        elif result.cancel is not None:
            self.scheduler.drop(result.cancel.parent.parent_order_id)  # type: ignore[union-attr]
            self.metrics.slices_ended(SliceStatus.CANCELED, len(result.cancel.canceled))
            request = getattr(item, "request", None)
            if request is not None and request.cancel_working_orders:
                await self._cancel_working(result.cancel, request.reason)
            log.info("request.canceled", extra={**meta, "parent_order_id": result.parent_order_id,
                                                 "canceled": len(result.cancel.canceled),
                                                 "in_flight": result.cancel.in_flight})
        elif isinstance(item, Invalid):
            log.warning("request.rejected", extra={**meta, "kind": item.kind,
                                                    "errors": [e.msg for e in item.errors][:5]})
        else:
            log.info(f"request.{result.outcome}", extra={**meta,
                                                         "parent_order_id": result.parent_order_id})

    async def _cancel_working(self, cancel: CancelResult, reason: str | None) -> None:
        """Cancel at the broker every submitted slice whose order is still open."""
        assert cancel.parent is not None
        working = 0
        for record in cancel.submitted:
            try:
                found = await self.broker.find(record.client_order_id)
                if found is not None and found.is_open and await self.broker.cancel(
                    found.broker_order_id
                ):
                    working += 1
            except Exception as exc:
                log.warning("cancel.working_order_failed", extra={
                    "parent_order_id": record.parent_order_id, "slice_num": record.slice_num,
                    "client_order_id": record.client_order_id, "error": str(exc)})
        message = events.parent_canceled(
            cancel.parent, len(cancel.canceled), cancel.in_flight, reason, working
        )
        await self.store.write_messages([message], self.clock())


def _meta(inbound: Inbound) -> dict[str, object]:
    return {"message_id": inbound.message_id, "correlation_id": inbound.correlation_id}
