"""A parent's progress as `twap watch` shows it: built from the database, then fed events.

Pure: no I/O. Events arrive at least once and may overtake the database read, so a slice only
moves forward (pending -> terminal) and each event id counts once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from twap_schemas.common import ParentStatus, SliceStatus
from worker.cli.exits import FAILED, OK
from worker.core.fills import average
from worker.core.records import ParentRecord, SliceRecord
from worker.core.states import TERMINAL

# Slices whose order reached the broker: working there, or ended there (filled or closed).
SENT = frozenset({SliceStatus.SUBMITTED, SliceStatus.FILLED, SliceStatus.CLOSED})


def price_text(value: Decimal | str | None) -> str | None:
    """A price for people: trailing zeros dropped (`190.2700000000` -> `190.27`)."""
    if value is None:
        return None
    try:
        return format(Decimal(value).normalize(), "f")
    except InvalidOperation:
        return str(value)  # not ours to judge: shown as it came


def _rank(status: SliceStatus) -> int:
    """How far along its life a status is: a slice never moves back."""
    if status in TERMINAL:
        return 3
    if status is SliceStatus.SUBMITTED:
        return 2
    return 1 if status is SliceStatus.SUBMITTING else 0


@dataclass
class Progress:
    parent_order_id: str
    label: str  # e.g. "buy 103 AAPL"
    total_slices: int
    total_qty: int
    status: ParentStatus = ParentStatus.ACTIVE
    slices: dict[int, tuple[SliceStatus, int]] = field(default_factory=dict)
    filled: dict[int, int] = field(default_factory=dict)  # per slice, its filled qty
    avg_fill_price: str | None = None  # the parent's, as last reported
    outcome: str | None = None  # filled | partial | unfilled, once completed
    seen: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, parent: ParentRecord, records: list[SliceRecord]) -> Progress:
        progress = cls(
            parent_order_id=parent.parent_order_id,
            label=f"{parent.side.value} {parent.qty} {parent.symbol}",
            total_slices=parent.total_slices,
            total_qty=parent.qty,
        )
        progress.refresh(parent, records)
        return progress

    def _move(self, num: int, status: SliceStatus, qty: int) -> bool:
        """Record a slice's newer status; True when it is worth a line (sent, or ended)."""
        current = self.slices.get(num)
        if current is not None and _rank(current[0]) >= _rank(status):
            return False  # a repeat, or a late event of an earlier step
        self.slices[num] = (status, qty)
        return status in TERMINAL or status is SliceStatus.SUBMITTED

    def refresh(self, parent: ParentRecord, records: list[SliceRecord]) -> list[str]:
        """Apply a database read; lines for the slices it shows newly finished."""
        lines = []
        status = parent.status
        if parent.filled_qty >= self.filled_qty:  # never behind what events already showed
            self.avg_fill_price = price_text(average(parent.notional, parent.filled_qty))
        if parent.outcome is not None:
            self.outcome = parent.outcome.value
        for record in records:
            self._fill(record.slice_num, record.filled_qty)
            if self._move(record.slice_num, record.status, record.qty):
                lines.append(
                    self._slice_line(record.slice_num, record.status, record.qty, record.reason)
                )
        if self.status is ParentStatus.ACTIVE and status is not ParentStatus.ACTIVE:
            self.status = status
            lines.append(self.summary())
        return lines

    def apply(self, event: dict[str, Any]) -> list[str]:
        """Apply one event of this parent; lines describing what changed."""
        event_id = event.get("event_id")
        if event.get("parent_order_id") != self.parent_order_id or event_id in self.seen:
            return []
        if isinstance(event_id, str):
            self.seen.add(event_id)
        kind = str(event.get("event_type", ""))
        if kind == "slice.fill" and "slice_num" in event:
            num = int(event["slice_num"])
            if not self._fill(num, int(event.get("filled_qty") or 0)):
                return []
            if int(event.get("parent_filled_qty") or 0) >= self.filled_qty:
                self.avg_fill_price = price_text(event.get("parent_avg_fill_price"))
            return [f"slice {num} fill {event.get('fill_qty')} at "
                    f"{price_text(event.get('fill_price'))}; "
                    f"{self.filled_qty}/{self.total_qty} shares filled, "
                    f"{self.sent_qty}/{self.total_qty} sent"]
        if kind.startswith("slice.") and "slice_num" in event and "status" in event:
            self._fill(int(event["slice_num"]), int(event.get("filled_qty") or 0))
            try:
                status = SliceStatus(event["status"])
            except ValueError:
                return []
            num, qty = int(event["slice_num"]), int(event.get("qty") or 0)
            if self._move(num, status, qty):
                return [self._slice_line(num, status, qty, event.get("reason"))]
            return []
        final = {
            "parent.completed": ParentStatus.COMPLETED,
            "parent.canceled": ParentStatus.CANCELED,
        }.get(kind)
        if final is not None and self.status is ParentStatus.ACTIVE:
            self.status = final
            if "avg_fill_price" in event:
                self.avg_fill_price = price_text(event["avg_fill_price"])
            if event.get("outcome") is not None:
                self.outcome = str(event["outcome"])
            reason = event.get("reason")
            return [self.summary() + (f" (reason: {reason})" if reason else "")]
        return []

    def _slice_line(self, num: int, status: SliceStatus, qty: int, reason: Any) -> str:
        line = (
            f"slice {num} {status.value} qty {qty}; {self.done_slices}/{self.total_slices} "
            f"slices done, {self.sent_qty}/{self.total_qty} shares sent, "
            f"{self.filled_qty}/{self.total_qty} filled"
        )
        return f"{line} ({reason})" if reason and status is not SliceStatus.SUBMITTED else line

    def _fill(self, num: int, filled_qty: int) -> bool:
        """A slice's filled qty as reported (it never decreases); True when it rose."""
        if filled_qty <= self.filled.get(num, 0):
            return False
        self.filled[num] = filled_qty
        return True

    @property
    def filled_qty(self) -> int:
        return sum(self.filled.values())

    @property
    def done_slices(self) -> int:
        return sum(1 for status, _ in self.slices.values() if status in TERMINAL)

    @property
    def sent_qty(self) -> int:
        return sum(qty for status, qty in self.slices.values() if status in SENT)

    @property
    def problems(self) -> dict[str, int]:
        """Finished slices that did not go out, by status."""
        counts = Counter(
            status.value
            for status, _ in self.slices.values()
            if status in TERMINAL and status not in SENT
        )
        return dict(sorted(counts.items()))

    @property
    def finished(self) -> bool:
        return self.status is not ParentStatus.ACTIVE

    @property
    def exit_code(self) -> int:
        """0 only for a completed parent whose every slice went out."""
        ok = self.status is ParentStatus.COMPLETED and not self.problems
        return OK if ok else FAILED

    def summary(self) -> str:
        sent = sum(1 for status, _ in self.slices.values() if status in SENT)
        text = (
            f"{self.status.value}: {sent}/{self.total_slices} slices submitted, "
            f"{self.sent_qty}/{self.total_qty} shares sent, {self.filled_qty}/{self.total_qty} "
            f"filled, avg price {self.avg_fill_price or '-'}"
        )
        if self.outcome is not None:
            text += f", outcome {self.outcome}"
        if self.problems:
            text += "; " + ", ".join(f"{n} {status}" for status, n in self.problems.items())
        return text

    def snapshot(self) -> dict[str, Any]:
        return {
            "parent_order_id": self.parent_order_id,
            "status": self.status.value,
            "done_slices": self.done_slices,
            "total_slices": self.total_slices,
            "sent_qty": self.sent_qty,
            "total_qty": self.total_qty,
            "filled_qty": self.filled_qty,
            "avg_fill_price": self.avg_fill_price,
            "outcome": self.outcome,
            "problems": self.problems,
        }
