"""Applying the broker's view of one order: the slice's fills, its parent's, the `fills` rows,
the events, and the slice's end (`filled` or `closed`) with the parent's completion.

Idempotent by construction: a view is applied as the increment from what the slice has
recorded (worker.core.fills), under the slice's row lock, and the slice's filled qty is
compare-and-set from the value read. A view that does not raise the filled qty adds nothing;
one for a slice already ended changes nothing. Exact: notionals are decimal text summed in
Python (never a float or a database's rounding), on both databases.

Runs in the caller's transaction. Locks the slice's row, then its parent's: the order every
other writer of both takes (an outcome's compare-and-set, then the parent's counts).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from sqlalchemy import String, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import SliceStatus
from worker.core import events
from worker.core.fills import Execution, Fill, ViewStep, combine, view_step
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.store import bulk, outbox
from worker.store import parents as parent_rows
from worker.store import slices as slice_rows
from worker.store.rows import to_slice
from worker.store.tables import fills, slices


class BrokerView(Protocol):
    """What the store reads of a broker's view of an order (brokers.orders.OrderView has it;
    the store does not import the brokers)."""

    @property
    def client_order_id(self) -> str: ...
    @property
    def broker_order_id(self) -> str: ...
    @property
    def filled_qty(self) -> int: ...
    @property
    def avg_fill_price(self) -> Decimal | None: ...
    @property
    def at(self) -> datetime: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def ended(self) -> bool: ...


class Applied(StrEnum):
    CHANGED = "changed"  # a fill, an end, or both were written
    UNCHANGED = "unchanged"  # duplicate, stale or reordered: nothing to do
    SUBMITTING = "submitting"  # the slice is not recorded `submitted` yet: apply it later
    UNKNOWN = "unknown"  # no slice has this client_order_id
    # The broker reports more filled than an ended slice holds: an order the worker closed
    # still executed (closed as not found, a done-for-day order resumed, ...). Not applied
    # (docs/decisions.md); the caller reports it.
    AFTER_END = "after_end"


@dataclass(frozen=True, slots=True)
class ViewResult:
    applied: Applied
    fill: Fill | None = None
    ended: SliceStatus | None = None
    slice: SliceRecord | None = None
    parent: ParentRecord | None = None


COID = bindparam("b_coid", type_=String())
SLICE_FOR_UPDATE = select(slices).where(slices.c.client_order_id == COID).with_for_update()
_INSERT_FILL = insert(fills)


async def apply_view(conn: AsyncConnection, view: BrokerView, now: datetime,
                     reason: str | None = None) -> ViewResult:
    """Apply one broker view of an order to its slice and parent (see the module's doc)."""
    row = (await conn.execute(SLICE_FOR_UPDATE, {"b_coid": view.client_order_id})).first()
    if row is None:
        return ViewResult(Applied.UNKNOWN)
    record = to_slice(row)
    if record.status is SliceStatus.SUBMITTING:
        return ViewResult(Applied.SUBMITTING, slice=record)
    if record.status is not SliceStatus.SUBMITTED:
        if view.filled_qty > record.filled_qty:
            return ViewResult(Applied.AFTER_END, slice=record)
        return ViewResult(Applied.UNCHANGED, slice=record)
    # Raises FillError on a view that cannot be right (beyond the qty, no price) before
    # anything is written: the caller logs it and reconciles later.
    step = _step(record, view, reason or view.reason)
    if step is None:
        return ViewResult(Applied.UNCHANGED, slice=record)
    if not await slice_rows.compare_and_set(conn, record, step.after, now):
        raise RuntimeError(f"slice {record.client_order_id} changed under its lock")
    parent = await parent_rows.locked(conn, record.parent_order_id)
    parent, messages = stepped(parent, step, view, now)
    filled = Execution(parent.filled_qty, parent.notional) if step.fill is not None else None
    last = await parent_rows.move(conn, parent.parent_order_id, now, working=-step.unworked,
                                  closes=step.ended, execution=filled)
    await outbox.write(conn, messages, now)
    await insert_fills(conn, [(step, view)], now)
    if last:
        await parent_rows.complete_if_done(conn, parent, now)
    return ViewResult(Applied.CHANGED, step.fill, step.after.status if step.ended else None,
                      step.after, parent)


def _step(record: SliceRecord, view: BrokerView, reason: str | None) -> ViewStep | None:
    return view_step(record, filled_qty=view.filled_qty, avg_price=view.avg_fill_price,
                     ended=view.ended, broker_order_id=view.broker_order_id, reason=reason)


def says_more(view: BrokerView) -> bool:
    """A submit's answer with more to write than `submitted`: fills already, or its end."""
    return view.filled_qty > 0 or view.ended


def submit_step(submitted: SliceRecord, view: BrokerView) -> ViewStep | None:
    """What the broker's answer to a submit already says of the order (`submitted`: the slice
    as its outcome writes it): fills, its end, or nothing. Raises FillError."""
    if not says_more(view):
        return None
    return _step(submitted, view, view.reason)


def stepped(parent: ParentRecord, step: ViewStep, view: BrokerView,
            now: datetime) -> tuple[ParentRecord, list[OutboxMessage]]:
    """The parent after `step` (`parent` as read under its lock) and the step's events: its
    `slice.fill`, then its `slice.filled` / `slice.closed`."""
    messages: list[OutboxMessage] = []
    if step.fill is not None:
        total = combine([Execution(parent.filled_qty, parent.notional),
                         Execution(step.fill.qty, step.fill.notional)])
        parent = replace(parent, filled_qty=total.filled_qty, notional=total.notional,
                         working_qty=parent.working_qty - step.fill.qty)
        messages.append(events.slice_fill(parent, step.filled, fill_qty=step.fill.qty,
                                          fill_price=step.fill.price, filled_at=view.at,
                                          at=now))
    if step.ended:
        parent = replace(parent, working_qty=parent.working_qty - step.released)
        messages.append(events.slice_event(parent, step.after, reason=step.after.reason,
                                           at=now))
    return parent, messages


async def insert_fills(conn: AsyncConnection, done: list[tuple[ViewStep, BrokerView]],
                       now: datetime) -> None:
    """The `fills` rows of applied steps, keyed by (client_order_id, cumulative filled qty)."""
    rows = [
        {"client_order_id": step.filled.client_order_id,
         "filled_qty": step.fill.after.filled_qty,
         "parent_order_id": step.filled.parent_order_id, "slice_num": step.filled.slice_num,
         "fill_qty": step.fill.qty, "fill_price": step.fill.price, "filled_at": view.at,
         "recorded_at": now}
        for step, view in done if step.fill is not None
    ]
    if len(rows) == 1:
        await conn.execute(_INSERT_FILL, rows[0])
    elif rows:
        await bulk.insert_rows(conn, fills, rows)


async def of_parent(conn: AsyncConnection, parent_id: str) -> list[dict[str, object]]:
    """Every fill of the parent's slices, in the order they were applied."""
    rows = await conn.execute(
        select(fills).where(fills.c.parent_order_id == parent_id)
        .order_by(fills.c.slice_num, fills.c.filled_qty)
    )
    return [dict(row._mapping) for row in rows]
