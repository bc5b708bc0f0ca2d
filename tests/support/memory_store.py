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
from worker.core.fills import Execution, FillError, ViewStep, combine, view_step
from worker.core.guards import GuardState
from worker.core.outcomes import Outcome, applied, breaker_after
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord, SwitchState
from worker.core.states import OPEN, PENDING, check_transition
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

    def apply_view(self, view: OrderView, now: datetime, reason: str | None = None) -> None:
        """The broker's view of an order, as the database store applies it (fills, the end)."""
        key = next((k for k, r in self.slices.items()
                    if r.client_order_id == view.client_order_id), None)
        if key is None or self.slices[key].status is not SliceStatus.SUBMITTED:
            return
        step = _step(self.slices[key], view, reason or view.reason)
        if step is None:
            return
        self.slices[key] = step.after
        self._stepped(step, view, now)
        if step.ended:
            self._complete_if_done(key[0], now)

    def _stepped(self, step: ViewStep, view: OrderView, now: datetime) -> None:
        """The parent's figures after `step` and its events (store/fills.py `stepped`)."""
        pid = step.after.parent_order_id
        parent = self.parents[pid]
        if step.fill is not None:
            total = combine([Execution(parent.filled_qty, parent.notional),
                             Execution(step.fill.qty, step.fill.notional)])
            parent = replace(parent, filled_qty=total.filled_qty, notional=total.notional,
                             working_qty=parent.working_qty - step.fill.qty)
            self.outbox.append(events.slice_fill(parent, step.filled, fill_qty=step.fill.qty,
                                                 fill_price=step.fill.price, filled_at=view.at,
                                                 at=now))
        if step.ended:
            parent = replace(parent, working_qty=parent.working_qty - step.released)
            self.outbox.append(events.slice_event(parent, step.after, reason=step.after.reason,
                                                  at=now))
        self.parents[pid] = parent

    async def finish_many(self, items: list[Finished], now: datetime, *, max_failures: int,
                          views: Sequence[OrderView | None] | None = None,
                          ) -> list[SliceRecord | None]:
        """As the database store: per item in order, the compare-and-set (status and filled
        qty), its event and, for a `submitted` outcome, what the submit's view already says
        (its fill and end events right after); then the completions, parents in id order;
        then the breaker over the run of outcomes."""
        written: list[SliceRecord | None] = []
        moved: list[tuple[SliceStatus, str | None]] = []
        closed: set[str] = set()
        for i, (parent, record, outcome) in enumerate(items):
            check_transition(record.status, outcome.status)
            key = (record.parent_order_id, record.slice_num)
            now_held = self.slices[key]
            if (now_held.status is not record.status
                    or now_held.filled_qty != record.filled_qty):
                written.append(None)
                continue
            updated = applied(record, outcome)
            view = views[i] if views is not None else None
            said: tuple[ViewStep, OrderView] | None = None
            if view is not None and outcome.status is SliceStatus.SUBMITTED:
                with contextlib.suppress(FillError):  # as the store: the outcome stands
                    step = _step(updated, view, view.reason)
                    said = None if step is None else (step, view)
            self.slices[key] = said[0].after if said is not None else updated
            written.append(self.slices[key])
            moved.append((outcome.status, outcome.reason))
            if outcome.status in PENDING:
                continue
            pid = parent.parent_order_id
            self.outbox.append(events.slice_event(parent, updated, reason=outcome.reason,
                                                  at=now))
            if outcome.status is SliceStatus.SUBMITTED:
                self.parents[pid] = replace(self.parents[pid],
                                            working_qty=self.parents[pid].working_qty
                                            + updated.qty)
            else:
                closed.add(pid)
            if said is not None:
                self._stepped(*said, now)
                if said[0].ended:
                    closed.add(pid)
        for pid in sorted(closed):
            self._complete_if_done(pid, now)
        breaker = breaker_after(moved, self.switches.consecutive_failures,
                                self.switches.breaker_tripped, max_failures)
        self.switches = replace(self.switches, consecutive_failures=breaker.consecutive_failures)
        if breaker.trip_reason is not None:
            self.switches = replace(self.switches, breaker_tripped=True,
                                    breaker_reason=breaker.trip_reason)
            self.outbox.append(events.control_changed(
                "breaker", True, reason=breaker.trip_reason, operator="worker", automatic=True,
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


def _step(record: SliceRecord, view: OrderView, reason: str | None) -> ViewStep | None:
    """What `view` does to `record` (core.fills.view_step, as the database store calls it);
    None: nothing. Raises FillError."""
    if view.filled_qty <= 0 and not view.ended:
        return None
    return view_step(record, filled_qty=view.filled_qty, avg_price=view.avg_fill_price,
                     ended=view.ended, broker_order_id=view.broker_order_id, reason=reason)
