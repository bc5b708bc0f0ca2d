"""Statements of a slice's life: claim, guard, finish, expire, and the parent's completion.

Every status change is a compare-and-set from the status the caller expects, so a canceled,
blocked or already-claimed slice is never overwritten by a late writer. Each function runs
inside the caller's transaction and writes the events it causes into the outbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import ParentStatus, SliceStatus
from worker.core import events
from worker.core.guards import GuardState
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord, SwitchState
from worker.core.states import PENDING, check_transition
from worker.store import bulk, prepared
from worker.store.prepared import PARENT_PREFIX
from worker.store.rows import outbox_values, to_parent, to_slice
from worker.store.switch_ops import record_slice_outcome, switches_from_row
from worker.store.tables import outbox, parents, slices

# A slice with its parent, the parent's columns labelled so that none clash with the slice's.
SLICE_WITH_PARENT = select(
    *slices.c, *(column.label(PARENT_PREFIX + column.name) for column in parents.c)
).join(parents, parents.c.parent_order_id == slices.c.parent_order_id)


def split_row(row: Any) -> tuple[ParentRecord, SliceRecord]:
    return to_parent(row, PARENT_PREFIX), to_slice(row)


async def write_outbox(conn: AsyncConnection, messages: list[OutboxMessage], now: datetime) -> None:
    if len(messages) == 1:
        await conn.execute(prepared.OUTBOX_INSERT, outbox_values(messages[0], now))
    elif messages:
        await bulk.insert_rows(conn, outbox, [outbox_values(m, now) for m in messages])


def _after(
    record: SliceRecord,
    new: SliceStatus,
    reason: str | None,
    broker_order_id: str | None,
    attempts: int | None,
    sent_at: datetime | None,
) -> SliceRecord:
    """The slice as it will be once the transition is written."""
    return SliceRecord(
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


def _transition_params(record: SliceRecord, updated: SliceRecord, now: datetime) -> dict[str, Any]:
    return {
        "b_pid": record.parent_order_id,
        "b_num": record.slice_num,
        "b_old": record.status.value,
        "b_status": updated.status.value,
        "b_now": now,
        "b_reason": updated.reason,
        "b_broker": updated.broker_order_id,
        "b_attempts": updated.attempts,
        "b_sent": updated.sent_at,
    }


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
    updated = _after(record, new, reason, broker_order_id, attempts, sent_at)
    result = await conn.execute(prepared.TRANSITION, _transition_params(record, updated, now))
    if result.rowcount != 1:
        return None
    if new in PENDING:
        return updated
    await write_outbox(conn, [events.slice_event(parent, updated, reason=reason)], now)
    await close_slices(conn, parent, 1, now)
    return updated


async def close_slices(conn: AsyncConnection, parent: ParentRecord, count: int,
                       now: datetime) -> bool:
    """`count` slices of the parent just became terminal: its open count goes down (taking
    its row lock to the commit); the one that reaches zero completes an active parent."""
    row = (
        await conn.execute(prepared.CLOSE_SLICES, {"b_pid": parent.parent_order_id, "b_n": count})
    ).first()
    if row is None or row.open_slices > 0 or row.status != ParentStatus.ACTIVE.value:
        return False
    return await _complete_if_done(conn, parent, now)


async def claim(
    conn: AsyncConnection, parent_id: str, slice_num: int, now: datetime
) -> tuple[ParentRecord, SliceRecord, SwitchState] | None:
    """scheduled → submitting; None (and no write) when the slice is anything but scheduled.

    One statement: the claim returns the parent and the switches as they are now.
    """
    row = (
        await conn.execute(prepared.CLAIM, {"b_pid": parent_id, "b_num": slice_num, "b_now": now})
    ).first()
    if row is None:
        return None
    return to_parent(row, PARENT_PREFIX), to_slice(row), switches_from_row(row)


async def guard_state(conn: AsyncConnection, parent_id: str, slice_num: int) -> GuardState | None:
    """What the guards need right before a send, in one statement; None: no such slice."""
    row = (
        await conn.execute(prepared.GUARD, {"b_pid": parent_id, "b_num": slice_num})
    ).first()
    if row is None:
        return None
    return GuardState(ParentStatus(row.parent_status), SliceStatus(row.slice_status),
                      switches_from_row(row))


async def note_claimed(conn: AsyncConnection, parent_id: str, slice_num: int, reason: str,
                       now: datetime) -> bool:
    """Write `reason` on a slice that is still `submitting`; False when it no longer is."""
    result = await conn.execute(
        prepared.NOTE_CLAIMED, {"b_pid": parent_id, "b_num": slice_num, "b_reason": reason,
                                "b_now": now},
    )
    return bool(result.rowcount == 1)


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


async def finish_alone(
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
) -> tuple[SliceRecord | None, bool]:
    """PostgreSQL, any outcome but `failed` (the breaker's count needs a transaction): the
    outcome as one statement (prepared.PG_FINISH) on an autocommit connection.

    Returns the slice as written (None: someone else changed it first) and whether it was the
    parent's last open slice, in which case the caller completes it (`complete_alone`).
    Should the process die between the two, the parent stays active with nothing open: the
    sweeper and the start-up recovery complete it.
    """
    check_transition(record.status, new)
    if new is SliceStatus.FAILED or new in PENDING:
        raise ValueError(f"finish_alone cannot record {new.value}")
    updated = _after(record, new, reason, broker_order_id, attempts, sent_at)
    message = events.slice_event(parent, updated, reason=reason)
    params = {**_transition_params(record, updated, now), **_outbox_params(message, now),
              "b_reset": new is SliceStatus.SUBMITTED}
    row = (await conn.execute(prepared.PG_FINISH, params)).one()
    if row.updated != 1:
        return None, False
    last = (row.open_slices is not None and row.open_slices <= 0
            and row.parent_status == ParentStatus.ACTIVE.value)
    return updated, last


def _outbox_params(message: OutboxMessage, now: datetime) -> dict[str, Any]:
    params = {f"o_{key}": value for key, value in outbox_values(message, now).items()}
    del params["o_created_at"]
    return params


async def complete_alone(conn: AsyncConnection, parent: ParentRecord, now: datetime) -> bool:
    """PostgreSQL, autocommit, after `finish_alone` closed the parent's last open slice: the
    tally (final: every slice is terminal and committed), then the completion with its event
    in one statement. Two round trips, no transaction held open."""
    key = {"b_pid": parent.parent_order_id}
    tallies = await _final_tallies(conn, parent.parent_order_id)
    if not tallies:
        return False
    message = events.parent_completed(parent, tallies)
    row = (
        await conn.execute(prepared.PG_COMPLETE,
                           {**key, "b_now": now, **_outbox_params(message, now)})
    ).one()
    return bool(row.updated == 1)


async def maybe_complete(conn: AsyncConnection, parent: ParentRecord, now: datetime) -> bool:
    """When every slice is terminal, an active parent becomes completed with its tally."""
    # Lock the parent first: two slices of one parent finishing at the same moment would each
    # see the other still pending (neither commit visible yet) and neither would complete it.
    # Behind the lock, the statements below see the other transaction's committed slice.
    key = {"b_pid": parent.parent_order_id}
    status = (await conn.execute(prepared.LOCK_PARENT, key)).scalar_one_or_none()
    if status != ParentStatus.ACTIVE.value:
        return False
    return await _complete_if_done(conn, parent, now)


async def _complete_if_done(conn: AsyncConnection, parent: ParentRecord, now: datetime) -> bool:
    """The completion itself; the caller holds the parent's row lock and saw it active."""
    key = {"b_pid": parent.parent_order_id}
    tallies = await _final_tallies(conn, parent.parent_order_id)
    if tallies is None:
        return False
    result = await conn.execute(prepared.COMPLETE_PARENT, {**key, "b_now": now})
    if result.rowcount != 1:
        return False
    await write_outbox(conn, [events.parent_completed(parent, tallies)], now)
    return True


async def _final_tallies(
    conn: AsyncConnection, parent_id: str
) -> dict[SliceStatus, tuple[int, int]] | None:
    """(count, qty) of the parent's slices by status; None while any is still pending."""
    rows = (await conn.execute(prepared.TALLY, {"b_pid": parent_id})).all()
    tallies = {SliceStatus(status): (int(count), int(qty)) for status, count, qty in rows}
    return None if any(status in PENDING for status in tallies) else tallies
