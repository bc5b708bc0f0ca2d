"""Following orders at the broker: its stream of order updates, applied to the store.

One supervised task consumes `broker.updates()`: each view is applied (worker.store.fills,
idempotent, so a repeated or stale update is harmless); a Resync (the first item, and after
every reconnect) asks the reconciler to look up every working order. A subscription that fails
is opened again after a backoff.

The broker's push can arrive before the executor has recorded the slice `submitted` (the
order filled while the record was being written). A view of an order the executor is still
sending (`sending` .. `recorded`) is parked here, in memory, without a database round trip;
the record applies the submit's own view, and `recorded` applies a parked view only if it
says more than what the record wrote (a sim market order's fill, pushed as it is returned,
costs nothing more). A view the store answers SUBMITTING for (a slice another path is
settling) is parked the same way and tried again. A view parked by a process that dies is not
lost either: reconciliation finds the order at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from twap_schemas.common import SliceStatus
from worker.brokers.base import Broker
from worker.brokers.orders import Lifecycle, OrderView, Resync
from worker.core.fills import FillError
from worker.core.records import SliceRecord
from worker.observability.metrics import WorkerMetrics
from worker.runtime.clock import Clock
from worker.runtime.dbretry import with_db_retry
from worker.store.fills import Applied, ViewResult
from worker.store.repository import Store

log = logging.getLogger(__name__)

ENDED = frozenset({SliceStatus.FILLED, SliceStatus.CLOSED})

# Waits between two subscriptions after one failed: doubling from the first, capped.
FIRST_BACKOFF = 0.5
MAX_BACKOFF = 15.0


class OrderUpdates:
    def __init__(self, store: Store, broker: Broker, clock: Clock, metrics: WorkerMetrics,
                 notify: Callable[[], None] = lambda: None,
                 on_resync: Callable[[], None] = lambda: None,
                 on_unknown: Callable[[str], None] = lambda client_order_id: None) -> None:
        self.store = store
        self.broker = broker
        self.clock = clock
        self.metrics = metrics
        self.notify = notify
        self.on_resync = on_resync
        self.on_unknown = on_unknown  # asks for a lookup of an order whose event is not known
        # When the worker last heard of each working order (an update of any kind, or a
        # lookup's answer): reconciliation's staleness clock.
        self.news: dict[str, datetime] = {}
        self._parked: dict[str, OrderView] = {}  # by client_order_id: the newest view
        self._sending: set[str] = set()  # orders the executor is sending and recording
        self._reasons: dict[str, str] = {}  # why the worker is closing an order (its cancel)
        self._tasks: set[asyncio.Task[Any]] = set()
        # Reported once: slices with fills after their end, and the last bad view per slice
        # (reconciliation asks again every pass; the log must not repeat it every pass).
        self._after_end: set[str] = set()
        self._bad: dict[str, tuple[object, ...]] = {}

    @property
    def parked(self) -> int:
        return len(self._parked)

    def heard(self, client_order_id: str) -> None:
        """News of the order: an update, or the broker's answer to a lookup."""
        self.news[client_order_id] = self.clock()

    def closing(self, client_order_id: str, reason: str) -> None:
        """The worker is canceling this order: a close that follows is for `reason`."""
        self._reasons[client_order_id] = reason

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume the broker's updates until `stopping`; a failed subscription is reopened."""
        wait = FIRST_BACKOFF
        while not stopping.is_set():
            try:
                async for item in self.broker.updates():
                    if isinstance(item, Resync):
                        self.on_resync()
                    else:
                        await self.apply(item)
                    wait = FIRST_BACKOFF
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("order_updates.stream_failed", extra={
                    "error": repr(exc)[:200], "retry_in_s": wait})
            try:
                await asyncio.wait_for(stopping.wait(), timeout=wait)
            except TimeoutError:
                pass
            wait = min(wait * 2, MAX_BACKOFF)

    async def apply(self, view: OrderView, *, retry: bool = True) -> ViewResult | None:
        """Apply one view; None when it could not be (logged: reconciliation retries it).
        A view for a slice not yet recorded `submitted` is parked (`retry`: and tried once
        more at once, in case the record committed meanwhile)."""
        ids = {"client_order_id": view.client_order_id, "broker_order_id": view.broker_order_id,
               "filled_qty": view.filled_qty, "lifecycle": view.lifecycle.value}
        self.heard(view.client_order_id)
        if view.lifecycle is Lifecycle.UNKNOWN:
            log.info("order_updates.unknown_status", extra=ids)
            self.on_unknown(view.client_order_id)  # what it means: the broker's own answer
            return None
        if view.client_order_id in self._sending:
            self._park(view, retry=False)  # `recorded` decides once the record is written
            return None
        reason = self._reasons.get(view.client_order_id) if view.ended else None
        try:
            result = await with_db_retry(
                lambda: self.store.apply_view(view, self.clock(), reason),
                clock=self.clock, deadline=None, what="fill", ids=ids)
        except FillError as exc:
            self._bad_view(view, ids, exc)
            return None
        except Exception as exc:
            log.error("order_updates.apply_failed", extra={**ids, "error": repr(exc)[:200]})
            return None
        self._bad.pop(view.client_order_id, None)
        if result.applied is Applied.SUBMITTING:
            self._park(view, retry)
        elif result.applied is Applied.CHANGED:
            self._changed(result, ids)
        elif result.applied is Applied.AFTER_END:
            self._fill_after_end(result, ids)
        if view.ended and result.applied is not Applied.SUBMITTING:
            self._reasons.pop(view.client_order_id, None)
            self.news.pop(view.client_order_id, None)
        return result

    def _bad_view(self, view: OrderView, ids: dict[str, object], exc: FillError) -> None:
        key = (view.lifecycle, view.filled_qty, view.avg_fill_price)
        if self._bad.get(view.client_order_id) == key:
            return
        self._bad[view.client_order_id] = key
        self.metrics.bad_broker_views.inc()
        log.error("order_updates.bad_view", extra={**ids, "error": str(exc)})

    def _fill_after_end(self, result: ViewResult, ids: dict[str, object]) -> None:
        """The broker reports fills of an order whose slice has ended: not applied (see
        docs/decisions.md), but a desk must learn that more executed than the worker shows."""
        record = result.slice
        assert record is not None  # AFTER_END always carries the slice
        if record.client_order_id in self._after_end:
            return
        self._after_end.add(record.client_order_id)
        self.metrics.fills_after_end.inc()
        log.error("order_updates.fill_after_end", extra={
            **ids, "parent_order_id": record.parent_order_id, "slice_num": record.slice_num,
            "slice_status": record.status.value, "slice_filled_qty": record.filled_qty})

    def _changed(self, result: ViewResult, ids: dict[str, object]) -> None:
        if result.fill is not None:
            self.metrics.filled(result.fill.qty)
        if result.ended is not None:
            self.metrics.slices_ended(result.ended)
            log.info(f"slice.{result.ended.value}", extra=ids)
        self.notify()

    def _park(self, view: OrderView, retry: bool) -> None:
        held = self._parked.get(view.client_order_id)
        if held is None or (view.filled_qty, view.ended) >= (held.filled_qty, held.ended):
            self._parked[view.client_order_id] = view
        if retry:
            # The record may have committed between the store's answer and the park: its
            # `landed` found nothing parked then, so try once more now. If it has not
            # committed yet, its `landed` will find this view parked.
            self._spawn(self._retry_parked(view.client_order_id))

    def sending(self, client_order_id: str) -> None:
        """The executor is about to send this order: its views wait for `recorded`."""
        self._sending.add(client_order_id)

    def recorded(self, client_order_id: str, written: SliceRecord | None) -> None:
        """The executor is done with this order (`written`: the slice as its record wrote it,
        None if nothing was written). A parked view that says no more than the record is
        dropped; any other is applied now."""
        self._sending.discard(client_order_id)
        view = self._parked.get(client_order_id)
        if view is None:
            return
        if (written is not None and view.filled_qty <= written.filled_qty
                and (not view.ended or written.status in ENDED)):
            del self._parked[client_order_id]
            return
        self._spawn(self._retry_parked(client_order_id))

    async def _retry_parked(self, client_order_id: str) -> None:
        view = self._parked.get(client_order_id)  # stays parked while it is applied
        if view is None:
            return
        result = await self.apply(view, retry=False)
        if result is None or result.applied is not Applied.SUBMITTING:
            if self._parked.get(client_order_id) is view:
                del self._parked[client_order_id]

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
