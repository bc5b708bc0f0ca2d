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

from sqlalchemy import BigInteger, String, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import SliceStatus
from worker.core import events
from worker.core.fills import Execution, Fill, increment
from worker.core.records import ParentRecord, SliceRecord
from worker.store import outbox
from worker.store import parents as parent_rows
from worker.store import slices as slice_rows
from worker.store.rows import to_parent, to_slice
from worker.store.slices import NOW, PID
from worker.store.tables import fills, parents, slices
from worker.store.types import ExactDecimal


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
PARENT_FOR_UPDATE = select(parents).where(parents.c.parent_order_id == PID).with_for_update()

# The slice's fills, compare-and-set from the filled qty read under its lock.
SLICE_FILLED = (
    update(slices)
    .where(slices.c.client_order_id == COID)
    .where(slices.c.status == SliceStatus.SUBMITTED.value)
    .where(slices.c.filled_qty == bindparam("b_old_filled", type_=BigInteger()))
    .values(filled_qty=bindparam("b_filled", type_=BigInteger()),
            fill_notional=bindparam("b_notional", type_=ExactDecimal()), updated_at=NOW)
)
PARENT_FILLED = (
    update(parents)
    .where(parents.c.parent_order_id == PID)
    .values(filled_qty=bindparam("b_filled", type_=BigInteger()),
            notional=bindparam("b_notional", type_=ExactDecimal()),
            working_qty=parents.c.working_qty - bindparam("b_fill_qty", type_=BigInteger()),
            updated_at=NOW)
)
RELEASE_WORKING = (
    update(parents)
    .where(parents.c.parent_order_id == PID)
    .values(working_qty=parents.c.working_qty - bindparam("b_qty", type_=BigInteger()),
            updated_at=NOW)
)
_INSERT_FILL = insert(fills)

NOT_FILLED_REASON = "ended at the broker before it filled completely"


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
    prow = (await conn.execute(PARENT_FOR_UPDATE, {"b_pid": record.parent_order_id})).one()
    parent = to_parent(prow)
    # Raises FillError on a view that cannot be right (beyond the qty, no price) before
    # anything is written (Store.finish relies on it to keep the `submitted` it applies the
    # submit's view with): the caller logs it and reconciles later.
    fill = increment(Execution(record.filled_qty, record.fill_notional), view.filled_qty,
                     view.avg_fill_price, record.qty)
    if fill is not None:
        record, parent = await _write_fill(conn, parent, record, fill, view, now)
    if not view.ended:
        if fill is None:
            return ViewResult(Applied.UNCHANGED, slice=record, parent=parent)
        return ViewResult(Applied.CHANGED, fill, slice=record, parent=parent)
    ended = await _end(conn, parent, record, view, now, reason)
    return ViewResult(Applied.CHANGED, fill, ended.status, ended, parent)


async def _write_fill(conn: AsyncConnection, parent: ParentRecord, record: SliceRecord,
                      fill: Fill, view: BrokerView,
                      now: datetime) -> tuple[SliceRecord, ParentRecord]:
    done = await conn.execute(SLICE_FILLED, {
        "b_coid": record.client_order_id, "b_old_filled": record.filled_qty,
        "b_filled": fill.after.filled_qty, "b_notional": fill.after.notional, "b_now": now})
    if done.rowcount != 1:  # cannot happen under the row lock; never write half a fill
        raise RuntimeError(f"slice {record.client_order_id} changed under its lock")
    record = replace(record, filled_qty=fill.after.filled_qty,
                     fill_notional=fill.after.notional,
                     broker_order_id=record.broker_order_id or view.broker_order_id)
    total = Execution(parent.filled_qty, parent.notional)
    after = Execution(total.filled_qty + fill.qty, total.notional + fill.notional)
    await conn.execute(PARENT_FILLED, {
        "b_pid": parent.parent_order_id, "b_filled": after.filled_qty,
        "b_notional": after.notional, "b_fill_qty": fill.qty, "b_now": now})
    parent = replace(parent, filled_qty=after.filled_qty, notional=after.notional,
                     working_qty=parent.working_qty - fill.qty)
    await conn.execute(_INSERT_FILL, {
        "client_order_id": record.client_order_id, "filled_qty": fill.after.filled_qty,
        "parent_order_id": record.parent_order_id, "slice_num": record.slice_num,
        "fill_qty": fill.qty, "fill_price": fill.price, "filled_at": view.at,
        "recorded_at": now})
    await outbox.write(conn, [events.slice_fill(parent, record, fill_qty=fill.qty,
                                                fill_price=fill.price, filled_at=view.at,
                                                at=now)], now)
    return record, parent


async def _end(conn: AsyncConnection, parent: ParentRecord, record: SliceRecord,
               view: BrokerView, now: datetime, why: str | None) -> SliceRecord:
    """The order ended at the broker: the slice is `filled` (every share) or `closed`."""
    if record.filled_qty == record.qty:
        status, reason = SliceStatus.FILLED, None
    else:
        status = SliceStatus.CLOSED
        reason = why or view.reason or NOT_FILLED_REASON
    ended = replace(record, status=status, reason=reason)
    if not await slice_rows.compare_and_set(conn, record, ended, now):
        raise RuntimeError(f"slice {record.client_order_id} changed under its lock")
    unfilled = record.qty - record.filled_qty
    if unfilled:
        await conn.execute(RELEASE_WORKING, {"b_pid": parent.parent_order_id, "b_qty": unfilled,
                                             "b_now": now})
    await outbox.write(conn, [events.slice_event(parent, ended, reason=reason, at=now)], now)
    await parent_rows.close_slices(conn, parent, 1, now)
    return ended


async def of_parent(conn: AsyncConnection, parent_id: str) -> list[dict[str, object]]:
    """Every fill of the parent's slices, in the order they were applied."""
    rows = await conn.execute(
        select(fills).where(fills.c.parent_order_id == parent_id)
        .order_by(fills.c.slice_num, fills.c.filled_qty)
    )
    return [dict(row._mapping) for row in rows]
