"""Statements of a slice's life: claim, guard, finish, expire, and the parent's completion.

Every status change is a compare-and-set from the status the caller expects, so a canceled,
blocked or already-claimed slice is never overwritten by a late writer. Each function runs
inside the caller's transaction and writes the events it causes into the outbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.common import ParentStatus, SliceStatus
from worker.core import events
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord, SwitchState
from worker.core.states import PENDING, check_transition
from worker.store.rows import outbox_values, to_parent, to_slice
from worker.store.switch_ops import read_switches, record_slice_outcome
from worker.store.tables import outbox, parents, slices


PARENT_PREFIX = "p_"
# A slice with its parent, the parent's columns labelled so that none clash with the slice's.
SLICE_WITH_PARENT = select(
    *slices.c, *(column.label(PARENT_PREFIX + column.name) for column in parents.c)
).join(parents, parents.c.parent_order_id == slices.c.parent_order_id)


def split_row(row: Any) -> tuple[ParentRecord, SliceRecord]:
    return to_parent(row, PARENT_PREFIX), to_slice(row)


def _key(parent_id: str, slice_num: int) -> Any:
    return and_(slices.c.parent_order_id == parent_id, slices.c.slice_num == slice_num)


async def write_outbox(conn: AsyncConnection, messages: list[OutboxMessage], now: datetime) -> None:
    if messages:
        await conn.execute(insert(outbox), [outbox_values(m, now) for m in messages])


async def load(
    conn: AsyncConnection, parent_id: str, slice_num: int
) -> tuple[ParentRecord, SliceRecord] | None:
    row = (await conn.execute(SLICE_WITH_PARENT.where(_key(parent_id, slice_num)))).first()
    return split_row(row) if row is not None else None


async def transition(
    conn: AsyncConnection,
    parent: ParentRecord,
    record: SliceRecord,
    new: SliceStatus,
    now: datetime,
    *,
    reason: str | None = None,
    broker_order_id: str | None = None,
    attempts: int | None = None,
    sent_at: datetime | None = None,
) -> SliceRecord | None:
    """CAS record.status → new, with its event. None when someone else changed it first."""
    check_transition(record.status, new)
    values: dict[str, Any] = {"status": new.value, "updated_at": now}
    if reason is not None:
        values["reason"] = reason
    if broker_order_id is not None:
        values["broker_order_id"] = broker_order_id
    if attempts is not None:
        values["attempts"] = attempts
    if sent_at is not None:
        values["sent_at"] = sent_at
    result = await conn.execute(
        update(slices)
        .where(_key(record.parent_order_id, record.slice_num))
        .where(slices.c.status == record.status.value)
        .values(**values)
    )
    if result.rowcount != 1:
        return None
    updated = SliceRecord(
        parent_order_id=record.parent_order_id,
        slice_num=record.slice_num,
        client_order_id=record.client_order_id,
        qty=record.qty,
        scheduled_time=record.scheduled_time,
        status=new,
        broker_order_id=broker_order_id or record.broker_order_id,
        attempts=record.attempts if attempts is None else attempts,
        reason=reason if reason is not None else record.reason,
        sent_at=sent_at or record.sent_at,
    )
    if new is not SliceStatus.SUBMITTING:
        await write_outbox(conn, [events.slice_event(parent, updated, reason=reason)], now)
        await maybe_complete(conn, parent, now)
    return updated


async def claim(
    conn: AsyncConnection, parent_id: str, slice_num: int, now: datetime
) -> tuple[ParentRecord, SliceRecord, SwitchState] | None:
    """scheduled → submitting; None (and no write) when the slice is anything but scheduled."""
    result = await conn.execute(
        update(slices)
        .where(_key(parent_id, slice_num))
        .where(slices.c.status == SliceStatus.SCHEDULED.value)
        .values(status=SliceStatus.SUBMITTING.value, updated_at=now)
    )
    if result.rowcount != 1:
        return None
    loaded = await load(conn, parent_id, slice_num)
    assert loaded is not None
    parent, record = loaded
    return parent, record, await read_switches(conn)


async def finish(
    conn: AsyncConnection,
    parent: ParentRecord,
    record: SliceRecord,
    new: SliceStatus,
    now: datetime,
    *,
    max_failures: int,
    reason: str | None = None,
    broker_order_id: str | None = None,
    attempts: int | None = None,
    sent_at: datetime | None = None,
) -> SliceRecord | None:
    """A claimed slice's outcome, with the breaker's failure count kept in step."""
    updated = await transition(
        conn,
        parent,
        record,
        new,
        now,
        reason=reason,
        broker_order_id=broker_order_id,
        attempts=attempts,
        sent_at=sent_at,
    )
    if updated is not None:
        await record_slice_outcome(conn, new, reason, now, max_failures=max_failures)
    return updated


async def maybe_complete(conn: AsyncConnection, parent: ParentRecord, now: datetime) -> bool:
    """When every slice is terminal, an active parent becomes completed with its tally."""
    # Lock the parent first: two slices of one parent finishing at the same moment would each
    # see the other still pending (neither commit visible yet) and neither would complete it.
    # Behind the lock, the tally below sees the other transaction's committed slice.
    status = (
        await conn.execute(
            select(parents.c.status)
            .where(parents.c.parent_order_id == parent.parent_order_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if status != ParentStatus.ACTIVE.value:
        return False
    rows = (
        await conn.execute(
            select(slices.c.status, func.count(), func.sum(slices.c.qty))
            .where(slices.c.parent_order_id == parent.parent_order_id)
            .group_by(slices.c.status)
        )
    ).all()
    tallies = {SliceStatus(status): (int(count), int(qty)) for status, count, qty in rows}
    if any(status in PENDING for status in tallies):
        return False
    result = await conn.execute(
        update(parents)
        .where(parents.c.parent_order_id == parent.parent_order_id)
        .where(parents.c.status == ParentStatus.ACTIVE.value)
        .values(status=ParentStatus.COMPLETED.value, updated_at=now)
    )
    if result.rowcount != 1:
        return False
    await write_outbox(conn, [events.parent_completed(parent, tallies)], now)
    return True
