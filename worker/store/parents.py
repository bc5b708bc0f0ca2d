"""Every statement about parent rows and their cancels: creation, the open-slice count, the
completion (with its event), the cancel and the broker cancels of working orders after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, Row, String, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import ParentStatus, SliceStatus
from worker.core import events
from worker.core.fills import Execution
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.core.states import OPEN
from worker.store import bulk, inlists, outbox
from worker.store import slices as slice_rows
from worker.store.rows import (
    PLANNED_SLICE_COLUMNS,
    SLICE_COLUMNS,
    parent_values,
    planned_slice_tuple,
    slice_tuple,
    to_parent,
    to_slice,
)
from worker.store.slices import NOW, PID
from worker.store.tables import cancels, parents, slices, status_is
from worker.store.types import ExactDecimal


async def insert_many(
    conn: AsyncConnection, plans: list[tuple[ParentRecord, list[SliceRecord]]], now: datetime
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


async def get(conn: AsyncConnection, parent_id: str) -> ParentRecord | None:
    row = (
        await conn.execute(select(parents).where(parents.c.parent_order_id == parent_id))
    ).first()
    return to_parent(row) if row is not None else None


# Built once, their IN lists in a few fixed lengths (inlists.py).
_BY_IDS = parents.c.parent_order_id.in_(bindparam("ids", expanding=True))
_EXISTING = inlists.built_once(select(parents.c.parent_order_id).where(_BY_IDS), "ids", "")
_STRATEGIES = inlists.built_once(
    select(parents.c.parent_order_id, parents.c.strategy_id).where(_BY_IDS), "ids", "")


async def strategies_of(conn: AsyncConnection, ids: list[str]) -> dict[str, str]:
    """parent id → its strategy, for the parents that exist."""
    found: dict[str, str] = {}
    for chunk in inlists.chunks(sorted(set(ids))):
        found.update((row[0], row[1]) for row in await conn.execute(_STRATEGIES, {"ids": chunk}))
    return found


async def existing_ids(conn: AsyncConnection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in inlists.chunks(ids):
        found.update(row[0] for row in await conn.execute(_EXISTING, {"ids": chunk}))
    return found


# What a slice's outcome or fill does to its parent's counts, under the parent's row lock (held
# to the commit): `b_working` shares start or stop working at the broker, `b_n` slices left the
# open states. Returns what the completion check needs.
MOVE = (
    update(parents)
    .where(parents.c.parent_order_id == PID)
    .values(working_qty=parents.c.working_qty + bindparam("b_working", type_=BigInteger()),
            open_slices=parents.c.open_slices - bindparam("b_n", type_=Integer()),
            updated_at=NOW)
    .returning(parents.c.open_slices, parents.c.status)
)
# The same with the parent's fills, which the caller sums exactly from the row it locked
# (FOR_UPDATE): a notional is decimal text on SQLite, never added up by the database.
MOVE_FILLED = (
    update(parents)
    .where(parents.c.parent_order_id == PID)
    .values(working_qty=parents.c.working_qty + bindparam("b_working", type_=BigInteger()),
            open_slices=parents.c.open_slices - bindparam("b_n", type_=Integer()),
            filled_qty=bindparam("b_filled", type_=BigInteger()),
            notional=bindparam("b_notional", type_=ExactDecimal()), updated_at=NOW)
    .returning(parents.c.open_slices, parents.c.status)
)

FOR_UPDATE = select(parents).where(parents.c.parent_order_id == PID).with_for_update()
LOCK = select(parents.c.status).where(parents.c.parent_order_id == PID).with_for_update()

COMPLETE = (
    update(parents)
    .where(parents.c.parent_order_id == PID)
    .where(parents.c.status == ParentStatus.ACTIVE.value)
    .values(status=ParentStatus.COMPLETED.value, updated_at=NOW,
            outcome=bindparam("b_outcome", type_=String()))
)


async def locked(conn: AsyncConnection, parent_id: str) -> ParentRecord:
    """The parent as it is now, its row locked to the commit (taken after its slice's)."""
    return to_parent((await conn.execute(FOR_UPDATE, {"b_pid": parent_id})).one())


async def move(conn: AsyncConnection, parent_id: str, now: datetime, *, working: int = 0,
               closes: int = 0, execution: Execution | None = None) -> bool:
    """`working` shares more (or fewer) working at the broker, `closes` slices more terminal
    and, with `execution`, the parent's fills as they now are, in one statement. True when it
    closed the last open slice of an active parent: the caller completes it
    (`complete_if_done`) once the slices' events are written."""
    params: dict[str, Any] = {"b_pid": parent_id, "b_working": working, "b_n": closes,
                              "b_now": now}
    if execution is None:
        row = (await conn.execute(MOVE, params)).first()
    else:
        row = (await conn.execute(MOVE_FILLED, {
            **params, "b_filled": execution.filled_qty, "b_notional": execution.notional,
        })).first()
    return (closes > 0 and row is not None and row.open_slices <= 0
            and row.status == ParentStatus.ACTIVE.value)


async def close_slices(conn: AsyncConnection, parent: ParentRecord, count: int,
                       now: datetime) -> bool:
    """`count` slices of the parent just became terminal: its open count goes down (taking
    its row lock to the commit); the one that reaches zero completes an active parent."""
    if not await move(conn, parent.parent_order_id, now, closes=count):
        return False
    return await complete_if_done(conn, parent, now)


async def final_tallies(
    conn: AsyncConnection, parent_id: str
) -> dict[SliceStatus, tuple[int, int]] | None:
    """(count, qty) of the parent's slices by status; None while any is still pending."""
    tallies = await slice_rows.tallies(conn, parent_id)
    return None if any(status in OPEN for status in tallies) else tallies


async def maybe_complete(conn: AsyncConnection, parent: ParentRecord, now: datetime) -> bool:
    """When every slice is terminal, an active parent becomes completed with its tally."""
    # Lock the parent first: two slices of one parent finishing at the same moment would each
    # see the other still pending (neither commit visible yet) and neither would complete it.
    # Behind the lock, the statements below see the other transaction's committed slice.
    status = (await conn.execute(LOCK, {"b_pid": parent.parent_order_id})).scalar_one_or_none()
    if status != ParentStatus.ACTIVE.value:
        return False
    return await complete_if_done(conn, parent, now)


async def complete_if_done(conn: AsyncConnection, parent: ParentRecord, now: datetime) -> bool:
    """The completion itself; the caller holds the parent's row lock and saw it active."""
    tallies = await final_tallies(conn, parent.parent_order_id)
    if tallies is None:
        return False
    fresh = await get(conn, parent.parent_order_id)  # its fills as they are now
    assert fresh is not None
    outcome = events.execution_outcome(fresh.qty, fresh.filled_qty)
    result = await conn.execute(COMPLETE, {"b_pid": parent.parent_order_id, "b_now": now,
                                           "b_outcome": outcome.value})
    if result.rowcount != 1:
        return False
    await outbox.write(conn, [events.parent_completed(fresh, tallies, at=now)], now)
    return True


def _complete_alone() -> Any:
    done = COMPLETE.returning(parents.c.parent_order_id).cte("done")
    return select(select(func.count()).select_from(done).scalar_subquery().label("updated")
                  ).add_cte(outbox.insert_if(done))


# PostgreSQL: an active parent → completed, with its parent.completed event, as one statement
# (autocommit). Used once every slice is terminal and committed: the tally read just before
# cannot change any more, and the status check keeps a concurrent cancel or a second completer
# from writing a second event.
COMPLETE_ALONE = _complete_alone()


async def complete_alone(conn: AsyncConnection, parent: ParentRecord, now: datetime) -> bool:
    """PostgreSQL, autocommit, after an outcome closed the parent's last open slice: the tally
    (final: every slice is terminal and committed), then the completion with its event in one
    statement. Two round trips, no transaction held open."""
    tallies = await final_tallies(conn, parent.parent_order_id)
    if not tallies:
        return False
    # Every slice is terminal and committed: the parent's fills cannot change any more.
    fresh = await get(conn, parent.parent_order_id)
    assert fresh is not None
    message = events.parent_completed(fresh, tallies, at=now)
    outcome = events.execution_outcome(fresh.qty, fresh.filled_qty)
    row = (await conn.execute(COMPLETE_ALONE, {"b_pid": parent.parent_order_id, "b_now": now,
                                               "b_outcome": outcome.value,
                                               **outbox.params(message, now)})).one()
    return bool(row.updated == 1)


ACTIVE = select(parents).where(parents.c.status == ParentStatus.ACTIVE.value)


async def complete_where(conn: AsyncConnection, condition: Any, now: datetime,
                         limit: int | None) -> int:
    rows = (await conn.execute(ACTIVE.where(condition).limit(limit))).all()
    done = 0
    for row in rows:
        done += await maybe_complete(conn, to_parent(row), now)
    return done


NOTHING_PENDING = parents.c.parent_order_id.not_in(slice_rows.PENDING_PARENT_IDS)
NONE_OPEN = parents.c.open_slices <= 0


async def pending_parent(
    conn: AsyncConnection, parent_id: str
) -> tuple[ParentRecord, int, datetime] | None:
    """An active parent with its first still-scheduled slice (number, due time); None when
    nothing is left to fire."""
    parent = await get(conn, parent_id)
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


async def pending(conn: AsyncConnection) -> list[Row[Any]]:
    """Every parent with a scheduled slice, with the first one (for re-arming)."""
    first = slice_rows.FIRST_SCHEDULED.subquery()
    query = select(
        parents.c.parent_order_id, parents.c.start_at, parents.c.interval_seconds,
        parents.c.total_slices, first.c.next_slice, first.c.next_due,
    ).join(first, first.c.parent_order_id == parents.c.parent_order_id)
    return list((await conn.execute(query)).all())


# -- cancels -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CancelResult:
    parent: ParentRecord | None  # None: unknown parent
    canceled: list[SliceRecord]  # canceled by this request (none when it repeats a cancel)
    in_flight: int
    canceled_slices: int = 0  # the parent's cancel's count: the first one's, when repeated
    sweep: bool = False  # broker cancels of working orders are to run after the commit


async def cancel(
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
    parent = await get(conn, parent_id)
    if parent is None:
        return CancelResult(None, [], 0)
    first = (await conn.execute(select(cancels).where(cancels.c.parent_order_id == parent_id))
             ).first()
    if first is not None:
        return await _repeat(conn, parent, first, working_orders, now)
    canceled = await slice_rows.cancel_scheduled(conn, parent_id, reason, now)
    in_flight = await slice_rows.in_flight(conn, parent_id)
    if canceled:
        await move(conn, parent_id, now, closes=len(canceled))
    if parent.status is ParentStatus.ACTIVE:
        await conn.execute(
            update(parents)
            .where(parents.c.parent_order_id == parent_id)
            .where(parents.c.status == ParentStatus.ACTIVE.value)
            .values(status=ParentStatus.CANCELED.value, cancel_reason=reason, updated_at=now)
        )
    await conn.execute(insert(cancels).values(
        parent_order_id=parent_id, canceled_slices=len(canceled), in_flight_slices=in_flight,
        reason=reason, working_orders=working_orders,
        working_orders_canceled=None if working_orders else 0, canceled_at=now,
    ))
    messages: list[OutboxMessage] = []
    if not working_orders:
        messages.append(events.parent_canceled(parent, len(canceled), in_flight, reason, at=now))
    if len(canceled) > 1:
        messages.append(events.slice_events_batch(parent, canceled, reason, at=now))
    else:
        messages.extend(events.slice_event(parent, record, reason=reason, at=now)
                        for record in canceled)
    await outbox.write(conn, messages, now)
    return CancelResult(parent, canceled, in_flight, len(canceled), working_orders)


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
        event = events.parent_canceled(parent, *counts, row["reason"], done, at=now)
        await outbox.write(conn, [event], now)
    return CancelResult(parent, [], counts[1], counts[0])


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
    parent = await get(conn, parent_id)
    row = (await conn.execute(select(cancels).where(cancels.c.parent_order_id == parent_id))
           ).one()
    assert parent is not None
    await outbox.write(conn, [events.parent_canceled(
        parent, row.canceled_slices, row.in_flight_slices, row.reason, canceled, at=now)], now)
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
