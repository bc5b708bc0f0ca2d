"""An in-memory SliceStore (worker.runtime.ports) for unit tests of the runtime: the same
compare-and-sets, open counts, completion and breaker policy as the database store, in dicts."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from twap_schemas.common import ParentStatus, SliceStatus
from worker.brokers.orders import OrderView
from worker.core import events
from worker.core.fills import Execution, FillError, increment
from worker.core.guards import GuardState
from worker.core.outcomes import Outcome, applied, breaker_after
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord, SwitchState
from worker.core.states import OPEN, check_transition
from worker.runtime.ports import Claimed, Finished, SliceKey


class MemoryStore:
    one_statement_outcomes = False

    def __init__(self) -> None:
        self.parents: dict[str, ParentRecord] = {}
        self.slices: dict[SliceKey, SliceRecord] = {}
        self.switches = SwitchState(False, None, False, None, 0)
        self.outbox: list[OutboxMessage] = []
        # Called right after a claim is written, before it returns: a test steps in there.
        self.after_claim: Callable[[SliceKey], None] = lambda key: None

    # -- set-up and test-side changes ---------------------------------------------------------
    def add(self, parent: ParentRecord, records: list[SliceRecord]) -> None:
        self.parents[parent.parent_order_id] = parent
        for record in records:
            self.slices[(record.parent_order_id, record.slice_num)] = record

    def cancel(self, parent_id: str) -> list[SliceRecord]:
        """The parent canceled, its scheduled slices with it (as the database store does)."""
        self.parents[parent_id] = replace(self.parents[parent_id], status=ParentStatus.CANCELED)
        canceled = []
        for key, record in self.slices.items():
            if key[0] == parent_id and record.status is SliceStatus.SCHEDULED:
                self.slices[key] = replace(record, status=SliceStatus.CANCELED)
                canceled.append(self.slices[key])
        return canceled

    def engage_kill_switch(self, reason: str) -> None:
        self.switches = replace(self.switches, kill_switch_engaged=True, kill_switch_reason=reason)

    def types(self) -> list[str | None]:
        return [m.type for m in self.outbox]

    # -- SliceStore ---------------------------------------------------------------------------
    async def claim(self, parent_id: str, slice_num: int, now: datetime) -> Claimed | None:
        key = (parent_id, slice_num)
        record = self.slices.get(key)
        if record is None or record.status is not SliceStatus.SCHEDULED:
            return None
        claimed = replace(record, status=SliceStatus.SUBMITTING)
        self.slices[key] = claimed
        switches = self.switches
        self.after_claim(key)
        return self.parents[parent_id], claimed, switches

    async def claim_many(self, keys: list[SliceKey], now: datetime) -> dict[SliceKey, Claimed]:
        out = {}
        for pid, num in dict.fromkeys(keys):
            claimed = await self.claim(pid, num, now)
            if claimed is not None:
                out[(pid, num)] = claimed
        return out

    async def guard_state(self, parent_id: str, slice_num: int) -> GuardState | None:
        record = self.slices.get((parent_id, slice_num))
        if record is None:
            return None
        return GuardState(self.parents[parent_id].status, record.status, self.switches)

    async def note_claimed(self, parent_id: str, slice_num: int, reason: str,
                           now: datetime) -> bool:
        key = (parent_id, slice_num)
        record = self.slices.get(key)
        if record is None or record.status is not SliceStatus.SUBMITTING:
            return False
        self.slices[key] = replace(record, reason=reason)
        return True

    async def finish(self, parent: ParentRecord, record: SliceRecord, outcome: Outcome,
                     now: datetime, *, max_failures: int,
                     view: OrderView | None = None) -> SliceRecord | None:
        return (await self.finish_many([(parent, record, outcome)], now,
                                       max_failures=max_failures, views=[view]))[0]

    async def size_claimed(self, parent_id: str, slice_num: int,
                           rule: Callable[[int, int], int], planned_qty: int,
                           now: datetime) -> int | None:
        # No await inside: atomic, as the database's locked transaction is.
        key = (parent_id, slice_num)
        record = self.slices.get(key)
        if record is None or record.status is not SliceStatus.SUBMITTING:
            return None
        parent = self.parents[parent_id]
        if parent.status is not ParentStatus.ACTIVE:
            return record.qty
        coming = sum(r.qty for (pid, num), r in self.slices.items()
                     if pid == parent_id and num != slice_num
                     and (r.status is SliceStatus.SUBMITTING
                          or (num < slice_num and r.status is SliceStatus.SCHEDULED)))
        qty = rule(parent.filled_qty, parent.working_qty + coming)
        if qty != record.qty:
            self.slices[key] = replace(record, qty=qty, planned_qty=planned_qty)
        return qty

    def apply_view(self, view: OrderView, now: datetime) -> None:
        """The broker's view of an order, as the database store applies it (fills, the end)."""
        key = next((k for k, r in self.slices.items()
                    if r.client_order_id == view.client_order_id), None)
        if key is None or self.slices[key].status is not SliceStatus.SUBMITTED:
            return
        record = self.slices[key]
        parent = self.parents[key[0]]
        fill = increment(Execution(record.filled_qty, record.fill_notional), view.filled_qty,
                         view.avg_fill_price, record.qty)
        if fill is not None:
            record = replace(record, filled_qty=fill.after.filled_qty,
                             fill_notional=fill.after.notional)
            parent = replace(parent, filled_qty=parent.filled_qty + fill.qty,
                             notional=parent.notional + fill.notional,
                             working_qty=parent.working_qty - fill.qty)
            self.outbox.append(events.slice_fill(parent, record, fill_qty=fill.qty,
                                                 fill_price=fill.price, filled_at=view.at,
                                                 at=now))
        if view.ended:
            done = record.filled_qty == record.qty
            record = replace(record, status=SliceStatus.FILLED if done else SliceStatus.CLOSED,
                             reason=None if done else view.reason)
            parent = replace(parent, working_qty=parent.working_qty
                             - (record.qty - record.filled_qty))
            self.outbox.append(events.slice_event(parent, record, reason=record.reason, at=now))
        self.slices[key] = record
        self.parents[key[0]] = parent
        if view.ended:
            self._complete_if_done(key[0], now)

    async def finish_many(self, items: list[Finished], now: datetime, *, max_failures: int,
                          views: Sequence[OrderView | None] | None = None,
                          ) -> list[SliceRecord | None]:
        written = self._finish_many(items, now, max_failures=max_failures)
        for i, view in enumerate(views or []):
            if written[i] is not None and view is not None:
                with contextlib.suppress(FillError):  # as the store: the outcome stands
                    self.apply_view(view, now)
                key = (items[i][1].parent_order_id, items[i][1].slice_num)
                written[i] = self.slices[key]
        return written

    def _finish_many(self, items: list[Finished], now: datetime, *,
                     max_failures: int) -> list[SliceRecord | None]:
        written: list[SliceRecord | None] = []
        moved: list[tuple[SliceStatus, str | None]] = []
        for parent, record, outcome in items:
            check_transition(record.status, outcome.status)
            key = (record.parent_order_id, record.slice_num)
            if self.slices[key].status is not record.status:
                written.append(None)
                continue
            updated = applied(record, outcome)
            self.slices[key] = updated
            written.append(updated)
            moved.append((outcome.status, outcome.reason))
            if outcome.status is SliceStatus.SUBMITTED:
                event = events.slice_event(parent, updated, reason=outcome.reason, at=now)
                self.outbox.append(event)
                pid = parent.parent_order_id
                self.parents[pid] = replace(self.parents[pid],
                                            working_qty=self.parents[pid].working_qty
                                            + updated.qty)
            elif outcome.status not in OPEN:
                event = events.slice_event(parent, updated, reason=outcome.reason, at=now)
                self.outbox.append(event)
                self._complete_if_done(parent.parent_order_id, now)
        step = breaker_after(moved, self.switches.consecutive_failures,
                             self.switches.breaker_tripped, max_failures)
        self.switches = replace(self.switches, consecutive_failures=step.consecutive_failures)
        if step.trip_reason is not None:
            self.switches = replace(self.switches, breaker_tripped=True,
                                    breaker_reason=step.trip_reason)
            self.outbox.append(events.control_changed(
                "breaker", True, reason=step.trip_reason, operator="worker", automatic=True,
                at=now))
        return written

    async def expire_overdue(self, now: datetime, grace: timedelta, limit: int = 1000) -> int:
        overdue = sorted(
            (r for r in self.slices.values()
             if r.status is SliceStatus.SCHEDULED and r.scheduled_time < now - grace),
            key=lambda r: r.scheduled_time,
        )[:limit]
        reason = f"missed its due time by more than the grace ({grace.total_seconds():.0f} s)"
        for record in overdue:
            parent = self.parents[record.parent_order_id]
            await self.finish(parent, record, Outcome(SliceStatus.EXPIRED, record.attempts,
                                                      reason=reason), now, max_failures=10**9)
        return len(overdue)

    def _complete_if_done(self, parent_id: str, now: datetime) -> None:
        parent = self.parents[parent_id]
        mine = [r for (pid, _), r in self.slices.items() if pid == parent_id]
        if parent.status is not ParentStatus.ACTIVE or any(r.status in OPEN for r in mine):
            return
        tallies: dict[SliceStatus, tuple[int, int]] = {}
        for r in mine:
            count, qty = tallies.get(r.status, (0, 0))
            tallies[r.status] = (count + 1, qty + r.qty)
        self.parents[parent_id] = replace(
            parent, status=ParentStatus.COMPLETED,
            outcome=events.execution_outcome(parent.qty, parent.filled_qty))
        self.outbox.append(events.parent_completed(parent, tallies, at=now))
