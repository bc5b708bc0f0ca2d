"""Statements of a cancel: pending slices → canceled, what the cancel did, and the broker
cancels of working orders that follow it (`cancel_working_orders`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import ParentStatus, SliceStatus
from worker.core import events
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.store import prepared
from worker.store.rows import to_parent, to_slice
from worker.store.slice_ops import write_outbox
from worker.store.tables import cancels, parents, slices, status_is


@dataclass(frozen=True, slots=True)
class CancelResult:
    parent: ParentRecord | None  # None: unknown parent
    canceled: list[SliceRecord]  # canceled by this request (none when it repeats a cancel)
    in_flight: int
    canceled_slices: int = 0  # the parent's cancel's count: the first one's, when repeated
    sweep: bool = False  # broker cancels of working orders are to run after the commit


async def get_parent(conn: AsyncConnection, parent_id: str) -> ParentRecord | None:
    row = (
        await conn.execute(select(parents).where(parents.c.parent_order_id == parent_id))
    ).first()
    return to_parent(row) if row is not None else None


async def cancel_pending(
    conn: AsyncConnection, parent_id: str, reason: str | None, now: datetime,
    *, working_orders: bool = False,
) -> CancelResult:
    """Every still-scheduled slice → canceled in one statement, with their events.

    Slices already claimed are going out and are counted as in flight. What the cancel did is
    kept (`cancels`): a cancel repeated or redelivered changes nothing and answers with the
    first one's counts. `parent.canceled` goes into the outbox first, ahead of the slice events
    (it is what the canceller waits for, and a thousand slice events take the relay a while),
    except when working orders are to be canceled at the broker: then it reports that work
    and is written once it is done (`finish_working`).
    """
    parent = await get_parent(conn, parent_id)
    if parent is None:
        return CancelResult(None, [], 0)
    first = (await conn.execute(select(cancels).where(cancels.c.parent_order_id == parent_id))
             ).first()
    if first is not None:
        return await _repeat(conn, parent, first, working_orders, now)
    result = await conn.execute(
        update(slices)
        .where(slices.c.parent_order_id == parent_id)
        .where(slices.c.status == SliceStatus.SCHEDULED.value)
        .values(status=SliceStatus.CANCELED.value, reason=reason, updated_at=now)
        .returning(slices.c.slice_num, slices.c.client_order_id, slices.c.qty,
                   slices.c.scheduled_time)
    )
    # Only what the events need: a thousand full rows cost more than the update itself.
    canceled = sorted(
        (
            SliceRecord(parent_order_id=parent_id, slice_num=num, client_order_id=coid,
                        qty=qty, scheduled_time=due, status=SliceStatus.CANCELED, reason=reason)
            for num, coid, qty, due in result
        ),
        key=lambda s: s.slice_num,
    )
    in_flight = (
        await conn.execute(
            select(slices.c.slice_num)
            .where(slices.c.parent_order_id == parent_id)
            .where(slices.c.status == SliceStatus.SUBMITTING.value)
        )
    ).all()
    if canceled:
        await conn.execute(prepared.CLOSE_SLICES, {"b_pid": parent_id, "b_n": len(canceled)})
    if parent.status is ParentStatus.ACTIVE:
        await conn.execute(
            update(parents)
            .where(parents.c.parent_order_id == parent_id)
            .where(parents.c.status == ParentStatus.ACTIVE.value)
            .values(status=ParentStatus.CANCELED.value, cancel_reason=reason, updated_at=now)
        )
    await conn.execute(insert(cancels).values(
        parent_order_id=parent_id, canceled_slices=len(canceled), in_flight_slices=len(in_flight),
        reason=reason, working_orders=working_orders,
        working_orders_canceled=None if working_orders else 0, canceled_at=now,
    ))
    messages: list[OutboxMessage] = []
    if not working_orders:
        messages.append(events.parent_canceled(parent, len(canceled), len(in_flight), reason))
    if len(canceled) > 1:
        messages.append(events.slice_events_batch(parent, canceled, reason))
    else:
        messages.extend(events.slice_event(parent, record, reason=reason) for record in canceled)
    await write_outbox(conn, messages, now)
    return CancelResult(parent, canceled, len(in_flight), len(canceled), working_orders)


async def _repeat(conn: AsyncConnection, parent: ParentRecord, first: Row[Any],
                  working_orders: bool, now: datetime) -> CancelResult:
    """A cancel of a parent already canceled: the first cancel's counts again. One that asks
    for working orders where the first did not starts that work now."""
    row = first._mapping
    counts = (row["canceled_slices"], row["in_flight_slices"])
    if working_orders and not row["working_orders"]:
        await conn.execute(
            update(cancels).where(cancels.c.parent_order_id == parent.parent_order_id)
            .values(working_orders=True, working_orders_canceled=None)
        )
        return CancelResult(parent, [], counts[1], counts[0], sweep=True)
    done = row["working_orders_canceled"]
    if done is not None:  # else the broker work still runs and writes parent.canceled itself
        await write_outbox(conn, [events.parent_canceled(parent, *counts, row["reason"], done)],
                           now)
    return CancelResult(parent, [], counts[1], counts[0])


async def working_slices(conn: AsyncConnection, parent_id: str) -> list[SliceRecord]:
    """The parent's slices at the broker (submitted, with an order id)."""
    rows = await conn.execute(
        select(slices)
        .where(slices.c.parent_order_id == parent_id)
        .where(slices.c.status == SliceStatus.SUBMITTED.value)
        .where(slices.c.broker_order_id.is_not(None))
        .order_by(slices.c.slice_num)
    )
    return [to_slice(row) for row in rows]


async def finish_working(conn: AsyncConnection, parent_id: str, canceled: int,
                         now: datetime) -> bool:
    """Record how many working orders the broker canceled and write `parent.canceled`; False
    when it was already recorded (the work ran twice: its first answer stands)."""
    done = await conn.execute(
        update(cancels).where(cancels.c.parent_order_id == parent_id)
        .where(cancels.c.working_orders_canceled.is_(None))
        .values(working_orders_canceled=canceled)
    )
    if done.rowcount != 1:
        return False
    parent = await get_parent(conn, parent_id)
    row = (await conn.execute(select(cancels).where(cancels.c.parent_order_id == parent_id))
           ).one()
    assert parent is not None
    await write_outbox(conn, [events.parent_canceled(
        parent, row.canceled_slices, row.in_flight_slices, row.reason, canceled)], now)
    return True


async def pending_working(conn: AsyncConnection) -> list[str]:
    """Parents whose broker cancels were asked for and not yet done (a restart resumes them)."""
    rows = await conn.execute(
        select(cancels.c.parent_order_id)
        .where(cancels.c.working_orders.is_(True))
        .where(cancels.c.working_orders_canceled.is_(None))
    )
    return [row[0] for row in rows]


async def landed_after_cancel(conn: AsyncConnection, since: datetime) -> list[SliceRecord]:
    """Orders that landed after their parent was canceled with its working orders (canceled
    since `since`): a stop may have cut their broker cancel short, so a start looks again."""
    rows = await conn.execute(
        select(slices)
        .join(cancels, cancels.c.parent_order_id == slices.c.parent_order_id)
        .where(cancels.c.working_orders.is_(True))
        .where(cancels.c.canceled_at >= since)
        .where(slices.c.status == SliceStatus.SUBMITTED.value)
        .where(slices.c.broker_order_id.is_not(None))
        .where(slices.c.updated_at >= cancels.c.canceled_at)
    )
    return [to_slice(row) for row in rows]


async def watched_in_flight(conn: AsyncConnection) -> list[str]:
    """Parents canceled with their working orders that still have a slice in flight: its
    order, once it lands, is canceled at the broker too."""
    rows = await conn.execute(
        select(cancels.c.parent_order_id).distinct()
        .join(slices, slices.c.parent_order_id == cancels.c.parent_order_id)
        .where(cancels.c.working_orders.is_(True))
        .where(status_is(SliceStatus.SUBMITTING.value))
    )
    return [row[0] for row in rows]
