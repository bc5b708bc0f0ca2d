"""Writing what happened to slices: the compare-and-set, its event, the parent's open count
(and its completion), the breaker's count. Each function runs in the caller's transaction
except `finish_alone`, which is one statement on its own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, bindparam, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import ParentStatus, SliceStatus
from worker.core import events
from worker.core.fills import Execution, FillError, ViewStep
from worker.core.outcomes import Outcome, applied
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.core.states import PENDING, check_transition
from worker.store import fills, outbox, switches
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
        await parent_rows.move(conn, parent.parent_order_id, now, working=updated.qty)
    else:
        await parent_rows.close_slices(conn, parent, 1, now)
    return updated


BadView = Callable[[SliceRecord, fills.BrokerView, FillError], None]


def _ignore_bad_view(record: SliceRecord, view: fills.BrokerView, error: FillError) -> None:
    pass


async def finish_many(conn: AsyncConnection, items: list[Finished], now: datetime, *,
                      max_failures: int,
                      views: Sequence[fills.BrokerView | None] | None = None,
                      on_bad_view: BadView = _ignore_bad_view) -> list[SliceRecord | None]:
    """Outcomes of claimed slices, in one transaction. Returns per item the slice as written,
    None where someone else changed it first.

    - Each slice: one compare-and-set. A `submitted` outcome with `views[i]`, the broker's
      answer to its submit, is written with what that answer already says (a market order may
      come back filled): the fills and the end go into the same row change, so no update of
      the order can be applied before the slice is known to be at the broker.
    - Each parent, in id order (two batches take them in the same order: no deadlock between
      them), after every slice of the group (slice rows, then parents): one statement for its
      working qty, open count and fills (its row read under lock first when fills change it).
    - The events in one insert, in the items' order; then the completions; then the breaker,
      moved once by the whole run of outcomes in their order (exact: its row is locked while it
      is counted).

    A view that cannot be right (FillError) is not applied: the outcome is written without it
    and the stream or reconciliation brings the order's figures later. It is reported to
    `on_bad_view` after everything else is written (Store.finish_many reports it only once
    the transaction has committed).
    """
    written: list[SliceRecord | None] = []
    steps: dict[int, tuple[ViewStep, fills.BrokerView]] = {}
    bad: list[tuple[SliceRecord, fills.BrokerView, FillError]] = []
    for i, (_, record, outcome) in enumerate(items):
        check_transition(record.status, outcome.status)
        updated = applied(record, outcome)
        view = views[i] if views is not None else None
        if view is not None and outcome.status is SliceStatus.SUBMITTED:
            try:
                step = fills.submit_step(updated, view)
            except FillError as exc:
                bad.append((updated, view, exc))
                step = None
            if step is not None:
                steps[i] = (step, view)
                updated = step.after
        if not await slice_rows.compare_and_set(conn, record, updated, now):
            written.append(None)
            steps.pop(i, None)
            continue
        written.append(updated)

    by_parent: dict[str, list[int]] = defaultdict(list)
    for i, w in enumerate(written):
        if w is not None and items[i][2].status not in PENDING:
            by_parent[items[i][1].parent_order_id].append(i)
    messages: dict[int, list[OutboxMessage]] = {}
    done: list[ParentRecord] = []
    for parent_id in sorted(by_parent):
        numbers = by_parent[parent_id]
        filling = any(steps[i][0].fill is not None for i in numbers if i in steps)
        parent = await parent_rows.locked(conn, parent_id) if filling else items[numbers[0]][0]
        working = closes = 0
        for i in numbers:
            _, record, outcome = items[i]
            sent = applied(record, outcome)
            messages[i] = [events.slice_event(parent, sent, reason=outcome.reason, at=now)]
            if outcome.status is SliceStatus.SUBMITTED:
                working += sent.qty
            else:
                closes += 1
            if i in steps:
                step, view = steps[i]
                parent, more = fills.stepped(parent, step, view, now)
                messages[i] += more
                working -= step.unworked
                closes += step.ended
        execution = Execution(parent.filled_qty, parent.notional) if filling else None
        if await parent_rows.move(conn, parent_id, now, working=working, closes=closes,
                                  execution=execution):
            done.append(parent)
    await outbox.write(conn, [m for i in sorted(messages) for m in messages[i]], now)
    await fills.insert_fills(conn, [steps[i] for i in sorted(steps)], now)
    for parent in done:
        await parent_rows.complete_if_done(conn, parent, now)
    await switches.record_outcomes(
        conn,
        [(o.status, o.reason) for (_, _, o), w in zip(items, written, strict=True) if w],
        now, max_failures=max_failures,
    )
    for record, view, error in bad:
        on_bad_view(record, view, error)
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
