"""Writing what happened to slices: the compare-and-set, its event, the parent's open count
(and its completion), the breaker's count. Each function runs in the caller's transaction
except `finish_alone`, which is one statement on its own."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, bindparam, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import ParentStatus, SliceStatus
from worker.core import events
from worker.core.outcomes import Outcome, applied
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.core.states import PENDING, check_transition
from worker.store import outbox, switches
from worker.store import parents as parent_rows
from worker.store import slices as slice_rows
from worker.store.slices import PID
from worker.store.tables import parents, slices

Finished = tuple[ParentRecord, SliceRecord, Outcome]


async def transition(conn: AsyncConnection, parent: ParentRecord, record: SliceRecord,
                     outcome: Outcome, now: datetime) -> SliceRecord | None:
    """CAS record.status → outcome.status, with its event. None when someone else changed
    it first."""
    check_transition(record.status, outcome.status)
    updated = applied(record, outcome)
    if not await slice_rows.compare_and_set(conn, record, updated, now):
        return None
    if outcome.status in PENDING:
        return updated
    event = events.slice_event(parent, updated, reason=outcome.reason, at=now)
    await outbox.write(conn, [event], now)
    if outcome.status is SliceStatus.SUBMITTED:  # working at the broker, not yet terminal
        await parent_rows.add_working(conn, parent.parent_order_id, updated.qty)
    else:
        await parent_rows.close_slices(conn, parent, 1, now)
    return updated


async def finish(conn: AsyncConnection, parent: ParentRecord, record: SliceRecord,
                 outcome: Outcome, now: datetime, *, max_failures: int) -> SliceRecord | None:
    """A claimed slice's outcome, with the breaker's failure count kept in step."""
    updated = await transition(conn, parent, record, outcome, now)
    if updated is not None:
        await switches.record_outcomes(conn, [(outcome.status, outcome.reason)], now,
                                       max_failures=max_failures)
    return updated


async def finish_many(conn: AsyncConnection, items: list[Finished], now: datetime, *,
                      max_failures: int) -> list[SliceRecord | None]:
    """Outcomes of many claimed slices, in one transaction: a compare-and-set per slice
    (each one as `finish` does it), then their events in one insert, each parent's open count
    taken down once (parents in id order, so two batches never wait on each other), and the
    breaker moved once by the whole run of outcomes, in their order (exact: its row is locked
    while it is counted). Returns per item the slice as written, None where someone else
    changed it first."""
    written: list[SliceRecord | None] = []
    messages: list[OutboxMessage] = []
    closed: Counter[str] = Counter()
    working: Counter[str] = Counter()
    by_id: dict[str, ParentRecord] = {}
    for parent, record, outcome in items:
        check_transition(record.status, outcome.status)
        updated = applied(record, outcome)
        if not await slice_rows.compare_and_set(conn, record, updated, now):
            written.append(None)
            continue
        written.append(updated)
        if outcome.status not in PENDING:
            messages.append(events.slice_event(parent, updated, reason=outcome.reason, at=now))
            if outcome.status is SliceStatus.SUBMITTED:
                working[parent.parent_order_id] += updated.qty
            else:
                closed[parent.parent_order_id] += 1
            by_id[parent.parent_order_id] = parent
    await outbox.write(conn, messages, now)
    for parent_id in sorted(set(closed) | set(working)):
        if working[parent_id]:
            await parent_rows.add_working(conn, parent_id, working[parent_id])
        if closed[parent_id]:
            await parent_rows.close_slices(conn, by_id[parent_id], closed[parent_id], now)
    await switches.record_outcomes(
        conn,
        [(o.status, o.reason) for (_, _, o), w in zip(items, written, strict=True) if w],
        now, max_failures=max_failures,
    )
    return written


def _finish_alone() -> Any:
    upd = slice_rows.TRANSITION.returning(slices.c.slice_num).cte("upd")
    hit = exists(select(upd.c.slice_num))
    par = (
        update(parents)
        .where(parents.c.parent_order_id == PID)
        .where(hit)
        .values(open_slices=parents.c.open_slices - bindparam("b_closes", type_=Integer()),
                working_qty=parents.c.working_qty + bindparam("b_working", type_=BigInteger()))
        .returning(parents.c.open_slices, parents.c.status)
        .cte("par")
    )
    rst = (switches.RESET_FAILURES.where(bindparam("b_reset", type_=Boolean())).where(hit)
           .cte("rst"))
    return select(
        select(func.count()).select_from(upd).scalar_subquery().label("updated"),
        select(par.c.open_slices).scalar_subquery().label("open_slices"),
        select(par.c.status).scalar_subquery().label("parent_status"),
    ).add_cte(outbox.insert_if(upd), rst)


# PostgreSQL: a slice's outcome as one statement, so it runs in autocommit: one round trip.
# The compare-and-set, its event, the breaker reset and the parent's open count, taken down
# by one only if the compare-and-set hit and the slice is terminal (a `submitted` slice adds
# its qty to the parent's working qty instead). That UPDATE waits for the parent's row lock and then
# reads the newest count, so the finisher that brings it to zero is the one that saw every
# other slice terminal: it alone completes the parent (parents.complete_alone).
FINISH_ALONE = _finish_alone()


async def finish_alone(conn: AsyncConnection, parent: ParentRecord, record: SliceRecord,
                       outcome: Outcome, now: datetime) -> tuple[SliceRecord | None, bool]:
    """PostgreSQL, any outcome but `failed` (the breaker's count needs a transaction): the
    outcome as one statement (FINISH_ALONE) on an autocommit connection.

    Returns the slice as written (None: someone else changed it first) and whether it was the
    parent's last open slice, in which case the caller completes it (`complete_alone`).
    Should the process die between the two, the parent stays active with nothing open: the
    sweeper and the start-up recovery complete it.
    """
    check_transition(record.status, outcome.status)
    if outcome.status is SliceStatus.FAILED or outcome.status in PENDING:
        raise ValueError(f"finish_alone cannot record {outcome.status.value}")
    updated = applied(record, outcome)
    message = events.slice_event(parent, updated, reason=outcome.reason, at=now)
    working = outcome.status is SliceStatus.SUBMITTED
    params = {**slice_rows.transition_params(record, updated, now),
              **outbox.params(message, now), "b_reset": working,
              "b_closes": 0 if working else 1, "b_working": updated.qty if working else 0}
    row = (await conn.execute(FINISH_ALONE, params)).one()
    if row.updated != 1:
        return None, False
    last = (not working and row.open_slices is not None and row.open_slices <= 0
            and row.parent_status == ParentStatus.ACTIVE.value)
    return updated, last


async def expire_overdue(conn: AsyncConnection, cutoff: datetime, reason: str, now: datetime,
                         limit: int) -> int:
    """Scheduled slices due before `cutoff` → expired, with events; returns how many."""
    expired = 0
    overdue = await slice_rows.overdue(conn, cutoff, limit)  # the oldest first: which ones
    # Written in parent-id order, the order finish_many locks parents in: two transactions
    # taking the same parents in different orders can deadlock on PostgreSQL.
    overdue.sort(key=lambda pair: (pair[1].parent_order_id, pair[1].slice_num))
    for parent, record in overdue:
        outcome = Outcome(SliceStatus.EXPIRED, record.attempts, reason=reason)
        expired += await transition(conn, parent, record, outcome, now) is not None
    return expired
