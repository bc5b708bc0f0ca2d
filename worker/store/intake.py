"""Request intake: apply a batch of classified requests, date submits by their first delivery
(the request receipts, intake's own table)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from worker.core import admission
from worker.core.access import Grant
from worker.core.intake import CancelOrder, IntakeItem, PlannedSubmit
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.core.risk import Reference, Usage
from worker.core.screening import Counted, ScreenInputs, screen
from worker.store import grants as grant_rows
from worker.store import inlists, outbox
from worker.store import limits as limit_rows
from worker.store import parents as parent_rows
from worker.store.dialects import dialect_for
from worker.store.parents import CancelResult
from worker.store.tables import request_receipts

Redate = Callable[[PlannedSubmit, datetime], IntakeItem]


@dataclass(frozen=True, slots=True)
class Screening:
    """What the runtime brings to the batch's risk and access checks: whether authorization
    is on, and the reference prices it fetched before the transaction (symbol → price)."""

    authz: bool = False
    references: Mapping[str, Reference] = field(default_factory=dict)


async def screen_inputs(conn: AsyncConnection, items: list[IntakeItem], known: set[str],
                        screening: Screening) -> ScreenInputs:
    """Read, in the batch's transaction, what core.screening decides on; the strategies
    whose new parents count against their limits are locked first (limits.lock)."""
    grants: dict[str, Grant] = {}
    cancel_strategies: dict[str, str] = {}
    if screening.authz:
        users = {i.inbound.user_id for i in items if isinstance(i, PlannedSubmit | CancelOrder)
                 and i.inbound.user_id is not None}
        grants = await grant_rows.of_users(conn, [u for u in users if u is not None])
        cancel_ids = [i.request.parent_order_id for i in items if isinstance(i, CancelOrder)]
        if cancel_ids:
            cancel_strategies = await parent_rows.strategies_of(conn, cancel_ids)
    new = [i.parent for i in items
           if isinstance(i, PlannedSubmit) and i.parent.parent_order_id not in known]
    if not new:
        return ScreenInputs(screening.authz, grants, cancel_strategies)
    limits = await limit_rows.effective_for(conn, {p.strategy_id for p in new})
    # Only limits on what a strategy already uses need its count, and the lock that keeps
    # the count true until the commit: without them a batch takes neither.
    counted = {s for s, lim in limits.items()
               if lim.max_open_parents is not None or lim.max_daily_notional is not None}
    usage: dict[tuple[str, date], Usage] = {}
    if counted:
        await limit_rows.lock(conn, counted)
        for key in sorted({(p.strategy_id, p.trade_date) for p in new
                           if p.strategy_id in counted}):
            usage[key] = await limit_rows.usage(conn, *key)
    return ScreenInputs(screening.authz, grants, cancel_strategies, limits, usage,
                        screening.references)


# Built once, its IN list in a few fixed lengths (inlists.py).
_RECEIPTS = inlists.built_once(
    select(request_receipts.c.message_id, request_receipts.c.first_seen_at).where(
        request_receipts.c.message_id.in_(bindparam("ids", expanding=True))),
    "ids", "")


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
    seen: dict[str, datetime] = {}
    for chunk in inlists.chunks(ids):
        seen.update((row[0], row[1]) for row in await conn.execute(_RECEIPTS, {"ids": chunk}))
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
    redate: Redate | None = None, screening: Screening | None = None,
) -> list[IntakeResult]:
    """Apply a batch of classified requests in order, in the caller's one transaction: who
    may and within which limits is decided by core.screening, what each becomes by
    core.admission; this writes it."""
    items = await date_by_receipts(conn, items, redate)
    submit_ids = [i.parent.parent_order_id for i in items if isinstance(i, PlannedSubmit)]
    known = await parent_rows.existing_ids(conn, submit_ids) if submit_ids else set()
    counted: list[Counted] = []
    if screening is not None:
        inputs = await screen_inputs(conn, items, known, screening)
        items, counted = screen(items, frozenset(known), inputs)
    for c in counted:
        await limit_rows.record_notional(conn, c.parent_order_id, c.strategy_id, c.trade_date,
                                         c.notional, c.reference)
    pending: list[tuple[ParentRecord, list[SliceRecord]]] = []
    messages: list[OutboxMessage] = []
    results: list[IntakeResult] = []
    for decision in admission.decide(items, frozenset(known), now, requests_queue):
        item = decision.item
        if not isinstance(item, CancelOrder):
            if decision.accepted is not None:
                pending.append(decision.accepted)
            messages.extend(decision.messages)
            results.append(IntakeResult(decision.outcome, decision.parent_order_id,
                                        accepted=decision.accepted))
            continue
        # A cancel may follow its own submit in the same batch: what came before goes in
        # first, rows and events, so the outbox keeps the order of the requests.
        await parent_rows.insert_many(conn, pending, now)
        await outbox.write(conn, messages, now)
        pending.clear()
        messages.clear()
        pid = item.request.parent_order_id
        cancel = await parent_rows.cancel(conn, pid, item.request.reason, now,
                                          working_orders=item.request.cancel_working_orders)
        outcome, owed = admission.answer_cancel(item, cancel.parent is not None,
                                                cancel.canceled_slices, cancel.in_flight, now)
        messages.extend(owed)
        results.append(IntakeResult(outcome, pid,
                                    cancel=cancel if cancel.parent is not None else None))
    await parent_rows.insert_many(conn, pending, now)
    await outbox.write(conn, messages, now)
    return results
