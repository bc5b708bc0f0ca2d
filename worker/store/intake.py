"""Request intake: apply a batch of classified requests, date submits by their first delivery
(the request receipts, intake's own table)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas.common import Outcome
from schemas.errors import ErrorDetail
from schemas.replies import Reply
from worker.core import events
from worker.core.intake import CancelOrder, IntakeItem, PlannedSubmit
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.store import outbox
from worker.store import parents as parent_rows
from worker.store.dialects import dialect_for
from worker.store.parents import CancelResult
from worker.store.tables import request_receipts

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
        await conn.execute(
            dialect_for(conn).insert_ignoring_conflicts(request_receipts),
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
    known = await parent_rows.existing_ids(conn, submit_ids) if submit_ids else set()
    pending: list[tuple[ParentRecord, list[SliceRecord]]] = []
    messages: list[OutboxMessage] = []
    results: list[IntakeResult] = []

    async def flush() -> None:
        await parent_rows.insert_many(conn, pending, now)
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
                        message_id=meta.message_id, correlation_id=meta.correlation_id, at=now
                    )
                )
                reply = Reply(outcome=Outcome.DUPLICATE, type="submit", parent_order_id=pid)
                results.append(IntakeResult("duplicate", pid))
            else:
                known.add(pid)
                pending.append((item.parent, item.slices))
                messages.append(events.parent_accepted(item.parent, item.slices, at=now))
                if meta.reply_to:  # the plan is long: build it only when someone listens
                    reply = events.accepted_reply(item.parent, item.slices)
                results.append(IntakeResult("accepted", pid, accepted=(item.parent, item.slices)))
        elif isinstance(item, CancelOrder):
            # A cancel may follow its own submit in the same batch: what came before goes in
            # first, rows and events, so the outbox keeps the order of the requests.
            await flush()
            await outbox.write(conn, messages, now)
            messages.clear()
            pid = item.request.parent_order_id
            cancel = await parent_rows.cancel(conn, pid, item.request.reason, now,
                                          working_orders=item.request.cancel_working_orders)
            if cancel.parent is None:
                errors = [ErrorDetail(loc="parent_order_id", msg=f"unknown parent {pid!r}")]
                messages.append(
                    events.request_rejected(
                        errors, message_id=meta.message_id, correlation_id=meta.correlation_id,
                        parent_order_id=pid, at=now
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
                    correlation_id=meta.correlation_id, strategy_id=item.strategy_id, at=now
                )
            )
            reply = Reply(outcome=Outcome.REJECTED, errors=item.errors)
            results.append(IntakeResult("rejected"))
        if meta.reply_to and reply is not None:
            messages.append(events.reply(meta.reply_to, meta.correlation_id, reply))
    await flush()
    await outbox.write(conn, messages, now)
    return results
