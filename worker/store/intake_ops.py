"""Statements of request intake: create parents with their slices, apply a batch of requests
(cancels: cancel_ops), date submits by their first delivery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import Outcome, ParentStatus, SliceStatus
from twap_schemas.errors import ErrorDetail
from twap_schemas.replies import Reply
from worker.core import events
from worker.core.intake import CancelOrder, IntakeItem, PlannedSubmit
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.store import bulk
from worker.store.cancel_ops import CancelResult, cancel_pending, get_parent
from worker.store.rows import (
    PLANNED_SLICE_COLUMNS,
    SLICE_COLUMNS,
    parent_values,
    planned_slice_tuple,
    slice_tuple,
    to_slice,
)
from worker.store.slice_ops import write_outbox
from worker.store.tables import parents, request_receipts, slices

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


async def get_slices(conn: AsyncConnection, parent_id: str) -> list[SliceRecord]:
    rows = await conn.execute(
        select(slices).where(slices.c.parent_order_id == parent_id).order_by(slices.c.slice_num)
    )
    return [to_slice(row) for row in rows]


async def pending_parent(
    conn: AsyncConnection, parent_id: str
) -> tuple[ParentRecord, int, datetime] | None:
    """An active parent with its first still-scheduled slice (number, due time); None when
    nothing is left to fire."""
    parent = await get_parent(conn, parent_id)
    if parent is None or parent.status is not ParentStatus.ACTIVE:
        return None
    first, due = (
        await conn.execute(
            select(func.min(slices.c.slice_num), func.min(slices.c.scheduled_time))
            .where(slices.c.parent_order_id == parent_id)
            .where(slices.c.status == SliceStatus.SCHEDULED.value)
        )
    ).one()
    return None if first is None else (parent, int(first), due)


Redate = Callable[[PlannedSubmit, datetime], IntakeItem]


async def date_by_receipts(
    conn: AsyncConnection, items: list[IntakeItem], redate: Redate | None
) -> list[IntakeItem]:
    """Submits dated by the worker's clock take the date of their first delivery, kept by
    message id: a redelivery after midnight plans the same parent. First deliveries are kept."""
    dated = {
        i: item for i, item in enumerate(items)
        if isinstance(item, PlannedSubmit) and item.dated_at is not None
        and item.inbound.message_id is not None
    }
    if not dated:
        return items
    ids = list({item.inbound.message_id: None for item in dated.values()})
    seen = {
        row[0]: row[1]
        for row in await conn.execute(
            select(request_receipts.c.message_id, request_receipts.c.first_seen_at)
            .where(request_receipts.c.message_id.in_(ids))
        )
    }
    out = list(items)
    new: dict[str, datetime] = {}
    for i, item in dated.items():
        mid, at = item.inbound.message_id, item.dated_at
        assert mid is not None and at is not None
        first = seen.get(mid)
        if first is None:
            new.setdefault(mid, at)
        elif redate is not None and first.date() != item.parent.trade_date:
            out[i] = redate(item, first)
    if new:
        table_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        await conn.execute(
            table_insert(request_receipts).on_conflict_do_nothing(),
            [{"message_id": mid, "first_seen_at": at} for mid, at in new.items()],
        )
    return out


async def prune_receipts(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Forget first deliveries older than `before` (a redelivery comes long before)."""
    oldest = (
        select(request_receipts.c.message_id)
        .where(request_receipts.c.first_seen_at < before)
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(
        delete(request_receipts).where(request_receipts.c.message_id.in_(oldest))
    )
    return int(result.rowcount or 0)


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What happened to one request: the outcome and what the scheduler must do about it."""

    outcome: str  # accepted | duplicate | rejected | canceled
    parent_order_id: str | None = None
    accepted: tuple[ParentRecord, list[SliceRecord]] | None = None
    cancel: CancelResult | None = None


async def apply_intake(
    conn: AsyncConnection, items: list[IntakeItem], now: datetime, requests_queue: str,
    redate: Redate | None = None,
) -> list[IntakeResult]:
    """Apply a batch of classified requests in order, in the caller's one transaction."""
    items = await date_by_receipts(conn, items, redate)
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
                                          working_orders=item.request.cancel_working_orders)
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
                    canceled_slices=cancel.canceled_slices, in_flight_slices=cancel.in_flight,
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
