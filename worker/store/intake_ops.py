"""Statements of request intake: create parents with their slices, cancel pending slices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.common import Outcome, ParentStatus, SliceStatus
from schemas.errors import ErrorDetail
from schemas.replies import Reply
from worker.core import events
from worker.core.intake import CancelOrder, IntakeItem, PlannedSubmit
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.store import bulk, prepared
from worker.store.rows import (
    PLANNED_SLICE_COLUMNS,
    SLICE_COLUMNS,
    parent_values,
    planned_slice_tuple,
    slice_tuple,
    to_parent,
    to_slice,
)
from worker.store.slice_ops import write_outbox
from worker.store.tables import parents, slices


@dataclass(frozen=True, slots=True)
class CancelResult:
    parent: ParentRecord | None  # None: unknown parent
    canceled: list[SliceRecord]
    in_flight: int
    submitted: list[SliceRecord]  # slices at the broker, for cancel_working_orders


# Built once: per call, `.in_(ids)` makes a reference cycle holding the ids (see outbox_ops).
_EXISTING_PARENTS = select(parents.c.parent_order_id).where(
    parents.c.parent_order_id.in_(bindparam("ids", expanding=True))
)


async def existing_parent_ids(conn: AsyncConnection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        rows = await conn.execute(_EXISTING_PARENTS, {"ids": ids[start : start + 500]})
        found.update(row[0] for row in rows)
    return found


async def insert_parents(
    conn: AsyncConnection,
    plans: list[tuple[ParentRecord, list[SliceRecord]]],
    now: datetime,
) -> None:
    """Bulk insert parents and all their slices (the caller's transaction holds them together)."""
    if not plans:
        return
    await bulk.insert_rows(conn, parents, [parent_values(p, now) for p, _ in plans])
    records = [s for _, sl in plans for s in sl]
    planned = [planned_slice_tuple(s, now) for s in records]
    if None in planned:
        await bulk.insert_tuples(conn, slices, SLICE_COLUMNS,
                                 [slice_tuple(s, now) for s in records])
    else:
        await bulk.insert_tuples(conn, slices, PLANNED_SLICE_COLUMNS, planned)  # type: ignore[arg-type]


async def get_parent(conn: AsyncConnection, parent_id: str) -> ParentRecord | None:
    row = (
        await conn.execute(select(parents).where(parents.c.parent_order_id == parent_id))
    ).first()
    return to_parent(row) if row is not None else None


async def get_slices(conn: AsyncConnection, parent_id: str) -> list[SliceRecord]:
    rows = await conn.execute(
        select(slices).where(slices.c.parent_order_id == parent_id).order_by(slices.c.slice_num)
    )
    return [to_slice(row) for row in rows]


async def cancel_pending(
    conn: AsyncConnection, parent_id: str, reason: str | None, now: datetime,
    *, announce: bool = False,
) -> CancelResult:
    """Every still-scheduled slice → canceled in one statement, with their events.

    Slices already claimed are going out and are counted as in flight. With `announce`, the
    parent's `parent.canceled` goes into the outbox first, ahead of its slice events: it is
    what the canceller waits for, and a thousand slice events take the relay a while.
    Otherwise it is left to the caller (it may have broker work to report first).
    """
    parent = await get_parent(conn, parent_id)
    if parent is None:
        return CancelResult(None, [], 0, [])
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
    others = [
        to_slice(row)
        for row in await conn.execute(
            select(slices)
            .where(slices.c.parent_order_id == parent_id)
            .where(slices.c.status.in_([SliceStatus.SUBMITTING.value,
                                        SliceStatus.SUBMITTED.value]))
            .order_by(slices.c.slice_num)
        )
    ]
    if canceled:
        await conn.execute(prepared.CLOSE_SLICES, {"b_pid": parent_id, "b_n": len(canceled)})
    in_flight = sum(1 for s in others if s.status is SliceStatus.SUBMITTING)
    submitted = [s for s in others if s.status is SliceStatus.SUBMITTED and s.broker_order_id]
    if parent.status is ParentStatus.ACTIVE:
        await conn.execute(
            update(parents)
            .where(parents.c.parent_order_id == parent_id)
            .where(parents.c.status == ParentStatus.ACTIVE.value)
            .values(status=ParentStatus.CANCELED.value, cancel_reason=reason, updated_at=now)
        )
    messages: list[OutboxMessage] = []
    if announce:
        messages.append(events.parent_canceled(parent, len(canceled), in_flight, reason))
    if len(canceled) > 1:
        messages.append(events.slice_events_batch(parent, canceled, reason))
    else:
        messages.extend(events.slice_event(parent, record, reason=reason) for record in canceled)
    await write_outbox(conn, messages, now)
    return CancelResult(parent, canceled, in_flight, submitted)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What happened to one request: the outcome and what the scheduler must do about it."""

    outcome: str  # accepted | duplicate | rejected | canceled
    parent_order_id: str | None = None
    accepted: tuple[ParentRecord, list[SliceRecord]] | None = None
    cancel: CancelResult | None = None


async def apply_intake(
    conn: AsyncConnection, items: list[IntakeItem], now: datetime, requests_queue: str
) -> list[IntakeResult]:
    """Apply a batch of classified requests in order, in the caller's one transaction."""
    submit_ids = [i.parent.parent_order_id for i in items if isinstance(i, PlannedSubmit)]
    known = await existing_parent_ids(conn, submit_ids) if submit_ids else set()
    pending: list[tuple[ParentRecord, list[SliceRecord]]] = []
    messages: list[OutboxMessage] = []
    results: list[IntakeResult] = []

    async def flush() -> None:
        await insert_parents(conn, pending, now)
        pending.clear()

    for item in items:
        meta = item.inbound
        reply: Reply | None = None
        if isinstance(item, PlannedSubmit):
            pid = item.parent.parent_order_id
            if pid in known:
                messages.append(
                    events.request_duplicate(
                        pid, item.parent.strategy_id,
                        message_id=meta.message_id, correlation_id=meta.correlation_id,
                    )
                )
                reply = Reply(outcome=Outcome.DUPLICATE, type="submit", parent_order_id=pid)
                results.append(IntakeResult("duplicate", pid))
            else:
                known.add(pid)
                pending.append((item.parent, item.slices))
                messages.append(events.parent_accepted(item.parent, item.slices))
                if meta.reply_to:  # the plan is long: build it only when someone listens
                    reply = events.accepted_reply(item.parent, item.slices)
                results.append(IntakeResult("accepted", pid, accepted=(item.parent, item.slices)))
        elif isinstance(item, CancelOrder):
            # A cancel may follow its own submit in the same batch: what came before goes in
            # first, rows and events, so the outbox keeps the order of the requests.
            await flush()
            await write_outbox(conn, messages, now)
            messages.clear()
            pid = item.request.parent_order_id
            cancel = await cancel_pending(conn, pid, item.request.reason, now,
                                          announce=not item.request.cancel_working_orders)
            if cancel.parent is None:
                errors = [ErrorDetail(loc="parent_order_id", msg=f"unknown parent {pid!r}")]
                messages.append(
                    events.request_rejected(
                        errors, message_id=meta.message_id, correlation_id=meta.correlation_id,
                        parent_order_id=pid,
                    )
                )
                reply = Reply(outcome=Outcome.REJECTED, type="cancel", parent_order_id=pid,
                              errors=errors)
                results.append(IntakeResult("rejected", pid))
            else:
                reply = Reply(
                    outcome=Outcome.ACCEPTED, type="cancel", parent_order_id=pid,
                    canceled_slices=len(cancel.canceled), in_flight_slices=cancel.in_flight,
                )
                results.append(IntakeResult("canceled", pid, cancel=cancel))
        else:
            messages.append(
                events.dead_letter(
                    meta.body, item.kind, item.errors, requests_queue,
                    meta.message_id, meta.correlation_id,
                )
            )
            messages.append(
                events.request_rejected(
                    item.errors, message_id=meta.message_id,
                    correlation_id=meta.correlation_id, strategy_id=item.strategy_id,
                )
            )
            reply = Reply(outcome=Outcome.REJECTED, errors=item.errors)
            results.append(IntakeResult("rejected"))
        if meta.reply_to and reply is not None:
            messages.append(events.reply(meta.reply_to, meta.correlation_id, reply))
    await flush()
    await write_outbox(conn, messages, now)
    return results
