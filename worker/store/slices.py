"""Every statement about slice rows: the claim, the guards' read, the compare-and-set of an
outcome, the cancel of what is still scheduled, and the reads over slices.

Every status change is a compare-and-set from the status the caller expects, so a canceled,
blocked or already-claimed slice is never overwritten by a late writer. Statements on the
per-slice path are built once with bound parameters: SQLAlchemy then skips straight to the
compiled form (profiled: building and keying them was a third of the store's CPU per slice).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    and_,
    bindparam,
    column,
    exists,
    func,
    literal_column,
    or_,
    select,
    table,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import ParentStatus, SliceStatus
from worker.core.guards import GuardState
from worker.core.records import ParentRecord, SliceRecord, SwitchState
from worker.store import switches
from worker.store.rows import to_parent, to_slice
from worker.store.tables import parents, slices, status_is
from worker.store.types import UTCDateTime

PARENT_PREFIX = "p_"
Claimed = tuple[ParentRecord, SliceRecord, SwitchState]

PID = bindparam("b_pid", type_=String())
NUM = bindparam("b_num", type_=Integer())
NOW = bindparam("b_now", type_=UTCDateTime())
_KEY = and_(slices.c.parent_order_id == PID, slices.c.slice_num == NUM)

# A slice with its parent, the parent's columns labelled so that none clash with the slice's.
WITH_PARENT = select(
    *slices.c, *(column.label(PARENT_PREFIX + column.name) for column in parents.c)
).join(parents, parents.c.parent_order_id == slices.c.parent_order_id)


def split_row(row: Any) -> tuple[ParentRecord, SliceRecord]:
    return to_parent(row, PARENT_PREFIX), to_slice(row)


def _parent_column(column: Any) -> Any:
    # Correlated on the slice's own parent id, written out: SQLAlchemy renders RETURNING
    # without table names on SQLite, where a bare name would mean the parent's own column.
    return (
        select(column)
        .where(parents.c.parent_order_id == literal_column("slices.parent_order_id"))
        .scalar_subquery()
        .label(PARENT_PREFIX + column.name)
    )


def _parent_by_id(column: Any) -> Any:
    return (
        select(column)
        .where(parents.c.parent_order_id == PID)
        .scalar_subquery()
        .label(PARENT_PREFIX + column.name)
    )


# PostgreSQL's lock table, enough of it to ask whether a session still holds its advisory lock.
_pg_locks = table("pg_locks", column("locktype", String()), column("pid", Integer()),
                  column("granted", Boolean()))

# The fence of a claim: the leadership session (`b_lock_pid`) still holds its advisory lock,
# read by the claim's own statement. A worker whose session ended (the server dropped it, an
# administrator ended it) claims nothing more, even before it notices.
LOCK_HELD = exists(
    select(literal_column("1"))
    .select_from(_pg_locks)
    .where(_pg_locks.c.locktype == "advisory")
    .where(_pg_locks.c.pid == bindparam("b_lock_pid", type_=Integer()))
    .where(_pg_locks.c.granted)
)

# scheduled → submitting in one statement, returning the claimed slice, its parent (p_*) and
# both switches as they are now (NULL: a switch row is missing). No row: not scheduled.
CLAIM = (
    update(slices)
    .where(_KEY)
    .where(slices.c.status == SliceStatus.SCHEDULED.value)
    .values(status=SliceStatus.SUBMITTING.value, updated_at=NOW)
    .returning(*slices.c, *(_parent_by_id(column) for column in parents.c),
               *switches.columns())
)


def _claim_many(count: int) -> Any:
    keys = [(bindparam(f"k_pid_{i}", type_=String()), bindparam(f"k_num_{i}", type_=Integer()))
            for i in range(count)]
    return (
        update(slices)
        .where(tuple_(slices.c.parent_order_id, slices.c.slice_num).in_(
            [tuple_(pid, num) for pid, num in keys]))
        .where(slices.c.status == SliceStatus.SCHEDULED.value)
        .values(status=SliceStatus.SUBMITTING.value, updated_at=NOW)
        .returning(*slices.c, *(_parent_column(column) for column in parents.c),
                   *switches.columns())
    )


FENCED_CLAIM = CLAIM.where(LOCK_HELD)

# Batches are cut into these sizes, each one statement built once (and cached compiled).
CLAIM_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
_CLAIM_MANY = {size: _claim_many(size) for size in CLAIM_SIZES}
_FENCED_CLAIM_MANY = {size: statement.where(LOCK_HELD) for size, statement in _CLAIM_MANY.items()}

def claim_warm_ups(fenced: bool, now: datetime) -> list[tuple[Any, dict[str, Any]]]:
    """A claim of each size with keys that match no slice (no parent id is empty, no slice
    number negative): every claim text the worker can send, for the start-up warm-up."""
    out: list[tuple[Any, dict[str, Any]]] = []
    for size in CLAIM_SIZES:
        params: dict[str, Any] = {"b_now": now}
        for i in range(size):
            params[f"k_pid_{i}"], params[f"k_num_{i}"] = "", -1
        if fenced:
            out.append((_FENCED_CLAIM_MANY[size], {**params, "b_lock_pid": 0}))
        else:
            out.append((_CLAIM_MANY[size], params))
    return out


# The guards' read right before a send, one statement: the parent's status, the slice's own
# status (someone else may have settled it) and both switches (NULL: a switch row is missing).
GUARD = (
    select(
        parents.c.status.label("parent_status"),
        slices.c.status.label("slice_status"),
        *switches.columns(),
    )
    .select_from(slices.join(parents, parents.c.parent_order_id == slices.c.parent_order_id))
    .where(_KEY)
)

# A claimed slice whose order the broker could not be asked about yet says so in its reason
# (`twap status` shows it); the status stays `submitting`.
NOTE_CLAIMED = (
    update(slices)
    .where(_KEY)
    .where(slices.c.status == SliceStatus.SUBMITTING.value)
    .values(reason=bindparam("b_reason", type_=slices.c.reason.type), updated_at=NOW)
)

# Catch-up sets the qty of a claimed slice before its send; the plan's qty stays beside it.
SET_CLAIMED_QTY = (
    update(slices)
    .where(_KEY)
    .where(slices.c.status == SliceStatus.SUBMITTING.value)
    .values(qty=bindparam("b_qty", type_=slices.c.qty.type),
            planned_qty=bindparam("b_planned", type_=slices.c.planned_qty.type), updated_at=NOW)
)


# A compare-and-set of every mutable column, from the status and filled qty the caller read
# (fills land on a `submitted` slice without changing its status).
MUTABLE = ("status", "broker_order_id", "attempts", "reason", "sent_at", "qty", "planned_qty",
           "filled_qty", "fill_notional")
TRANSITION = (
    update(slices)
    .where(_KEY)
    .where(slices.c.status == bindparam("b_old", type_=String()))
    .where(slices.c.filled_qty == bindparam("b_old_filled", type_=BigInteger()))
    .values(updated_at=NOW, **{name: bindparam(f"b_{name}", type_=slices.c[name].type)
                               for name in MUTABLE})
)

TALLY = (
    select(slices.c.status, func.count(), func.sum(slices.c.qty))
    .where(slices.c.parent_order_id == PID)
    .group_by(slices.c.status)
)


def transition_params(record: SliceRecord, updated: SliceRecord, now: datetime) -> dict[str, Any]:
    """TRANSITION's values: `record` (as read) → `updated`."""
    params: dict[str, Any] = {f"b_{name}": getattr(updated, name) for name in MUTABLE}
    params["b_status"] = updated.status.value
    params.update(b_pid=record.parent_order_id, b_num=record.slice_num,
                  b_old=record.status.value, b_old_filled=record.filled_qty, b_now=now)
    return params


async def compare_and_set(conn: AsyncConnection, record: SliceRecord, updated: SliceRecord,
                          now: datetime) -> bool:
    """record → updated, if the slice is still in record's status."""
    result = await conn.execute(TRANSITION, transition_params(record, updated, now))
    return bool(result.rowcount == 1)


async def claim(conn: AsyncConnection, parent_id: str, slice_num: int, now: datetime,
                lock_pid: int | None = None) -> Claimed | None:
    """scheduled → submitting; None (and no write) when the slice is anything but scheduled,
    or (`lock_pid` given) when that session no longer holds its advisory lock. One statement:
    the claim returns the parent and the switches as they are now."""
    params = {"b_pid": parent_id, "b_num": slice_num, "b_now": now}
    if lock_pid is None:
        row = (await conn.execute(CLAIM, params)).first()
    else:
        row = (await conn.execute(FENCED_CLAIM, {**params, "b_lock_pid": lock_pid})).first()
    if row is None:
        return None
    return to_parent(row, PARENT_PREFIX), to_slice(row), switches.from_row(row)


async def claim_many(conn: AsyncConnection, keys: list[tuple[str, int]], now: datetime,
                     lock_pid: int | None = None) -> dict[tuple[str, int], Claimed]:
    """Each of `keys` scheduled → submitting: a compare-and-set per slice, with the switches
    read in the same statement (one snapshot per statement, as a single claim has), fenced as
    `claim` is when `lock_pid` is given. Only the slices this call claimed are returned.

    Up to CLAIM_SIZES[-1] keys are one statement: the keys are padded to the next size by
    repeating the last one (a key twice in the IN list still matches its row once). So a
    batch that fails fails whole, even where each statement commits on its own (PostgreSQL's
    autocommit): no part of it is claimed without its callers being told."""
    out: dict[tuple[str, int], Claimed] = {}
    keys = list(dict.fromkeys(keys))
    start = 0
    while start < len(keys):
        left = len(keys) - start
        size = next((s for s in CLAIM_SIZES if s >= left), CLAIM_SIZES[-1])
        chunk = keys[start : start + size]
        start += size
        chunk += [chunk[-1]] * (size - len(chunk))
        params: dict[str, Any] = {"b_now": now}
        for i, (pid, num) in enumerate(chunk):
            params[f"k_pid_{i}"], params[f"k_num_{i}"] = pid, num
        statement = _CLAIM_MANY[size]
        if lock_pid is not None:
            statement, params["b_lock_pid"] = _FENCED_CLAIM_MANY[size], lock_pid
        for row in await conn.execute(statement, params):
            record = to_slice(row)
            out[(record.parent_order_id, record.slice_num)] = (
                to_parent(row, PARENT_PREFIX), record, switches.from_row(row))
    return out


async def guard_state(conn: AsyncConnection, parent_id: str, slice_num: int) -> GuardState | None:
    """What the guards need right before a send, in one statement; None: no such slice."""
    row = (await conn.execute(GUARD, {"b_pid": parent_id, "b_num": slice_num})).first()
    if row is None:
        return None
    return GuardState(ParentStatus(row.parent_status), SliceStatus(row.slice_status),
                      switches.from_row(row))


async def note_claimed(conn: AsyncConnection, parent_id: str, slice_num: int, reason: str,
                       now: datetime) -> bool:
    """Write `reason` on a slice that is still `submitting`; False when it no longer is."""
    result = await conn.execute(
        NOTE_CLAIMED, {"b_pid": parent_id, "b_num": slice_num, "b_reason": reason, "b_now": now},
    )
    return bool(result.rowcount == 1)


async def of_parent(conn: AsyncConnection, parent_id: str) -> list[SliceRecord]:
    rows = await conn.execute(
        select(slices).where(slices.c.parent_order_id == parent_id).order_by(slices.c.slice_num)
    )
    return [to_slice(row) for row in rows]


async def tallies(conn: AsyncConnection, parent_id: str) -> dict[SliceStatus, tuple[int, int]]:
    """(count, qty) of the parent's slices by status."""
    rows = (await conn.execute(TALLY, {"b_pid": parent_id})).all()
    return {SliceStatus(status): (int(count), int(qty)) for status, count, qty in rows}


async def cancel_scheduled(conn: AsyncConnection, parent_id: str, reason: str | None,
                           now: datetime) -> list[SliceRecord]:
    """Every still-scheduled slice of the parent → canceled, in one statement."""
    result = await conn.execute(
        update(slices)
        .where(slices.c.parent_order_id == parent_id)
        .where(slices.c.status == SliceStatus.SCHEDULED.value)
        .values(status=SliceStatus.CANCELED.value, reason=reason, updated_at=now)
        .returning(slices.c.slice_num, slices.c.client_order_id, slices.c.qty,
                   slices.c.scheduled_time)
    )
    # Only what the events need: a thousand full rows cost more than the update itself.
    return sorted(
        (
            SliceRecord(parent_order_id=parent_id, slice_num=num, client_order_id=coid,
                        qty=qty, scheduled_time=due, status=SliceStatus.CANCELED, reason=reason)
            for num, coid, qty, due in result
        ),
        key=lambda s: s.slice_num,
    )


async def in_flight(conn: AsyncConnection, parent_id: str) -> int:
    rows = await conn.execute(
        select(slices.c.slice_num)
        .where(slices.c.parent_order_id == parent_id)
        .where(slices.c.status == SliceStatus.SUBMITTING.value)
    )
    return len(rows.all())


async def overdue(conn: AsyncConnection, cutoff: datetime,
                  limit: int) -> list[tuple[ParentRecord, SliceRecord]]:
    rows = await conn.execute(
        WITH_PARENT
        .where(status_is(SliceStatus.SCHEDULED.value))
        .where(slices.c.scheduled_time < cutoff)
        .order_by(slices.c.scheduled_time)
        .limit(limit)
    )
    return [split_row(row) for row in rows]


async def claimed(conn: AsyncConnection, untouched_since: datetime | None,
                  limit: int | None) -> list[tuple[ParentRecord, SliceRecord]]:
    query = WITH_PARENT.where(status_is(SliceStatus.SUBMITTING.value))
    if untouched_since is not None:
        query = query.where(slices.c.updated_at < untouched_since)
    rows = await conn.execute(query.order_by(slices.c.scheduled_time).limit(limit))
    return [split_row(row) for row in rows]


# Per parent with a scheduled slice: its first one (number, due time).
FIRST_SCHEDULED = (
    select(
        slices.c.parent_order_id,
        func.min(slices.c.slice_num).label("next_slice"),
        func.min(slices.c.scheduled_time).label("next_due"),
    )
    .where(slices.c.status == SliceStatus.SCHEDULED.value)
    .group_by(slices.c.parent_order_id)
)

# Parents with a slice not yet terminal (still to send, being sent, or working at the broker).
PENDING_PARENT_IDS = select(slices.c.parent_order_id).where(
    slices.c.status.in_([SliceStatus.SCHEDULED.value, SliceStatus.SUBMITTING.value,
                         SliceStatus.SUBMITTED.value])
)


async def working(conn: AsyncConnection, parent_id: str) -> list[SliceRecord]:
    """The parent's slices at the broker (submitted, with an order id)."""
    rows = await conn.execute(
        select(slices)
        .where(slices.c.parent_order_id == parent_id)
        .where(slices.c.status == SliceStatus.SUBMITTED.value)
        .where(slices.c.broker_order_id.is_not(None))
        .order_by(slices.c.slice_num)
    )
    return [to_slice(row) for row in rows]


async def submitted(conn: AsyncConnection, untouched_since: datetime | None,
                    limit: int | None) -> list[tuple[SliceRecord, datetime]]:
    """Slices working at the broker with their last write, oldest first; with
    `untouched_since`, only those not written since then."""
    query = select(slices).where(status_is(SliceStatus.SUBMITTED.value))
    if untouched_since is not None:
        query = query.where(slices.c.updated_at < untouched_since)
    rows = await conn.execute(query.order_by(slices.c.updated_at).limit(limit))
    return [(to_slice(row), row.updated_at) for row in rows]


async def submitted_with_parents(conn: AsyncConnection,
                                 limit: int | None) -> list[tuple[ParentRecord, SliceRecord]]:
    """Slices working at the broker with their parents (the slice and parent ends' scan)."""
    rows = await conn.execute(
        WITH_PARENT.where(status_is(SliceStatus.SUBMITTED.value))
        .order_by(slices.c.scheduled_time).limit(limit)
    )
    return [split_row(row) for row in rows]


CATCH_UP_STATE = select(
    parents.c.status,
    parents.c.filled_qty,
    parents.c.working_qty,
    select(func.coalesce(func.sum(slices.c.qty), 0))
    .where(slices.c.parent_order_id == PID)
    .where(slices.c.slice_num != NUM)
    .where(or_(slices.c.status == SliceStatus.SUBMITTING.value,
               and_(slices.c.slice_num < NUM,
                    slices.c.status == SliceStatus.SCHEDULED.value)))
    .scalar_subquery(),
).where(parents.c.parent_order_id == PID)
SLICE_LOCK = select(slices.c.status, slices.c.qty).where(_KEY).with_for_update()
PARENT_LOCK = select(parents.c.status).where(parents.c.parent_order_id == PID).with_for_update()


async def size_claimed(conn: AsyncConnection, parent_id: str, slice_num: int,
                       rule: Callable[[int, int], int], planned_qty: int,
                       now: datetime) -> int | None:
    """Catch-up sizing of a claimed slice as one step, in the caller's transaction: the slice's
    row, then its parent's, locked (the order every writer of both takes), so two slices of a
    parent sized at once are sized one after the other and the second counts the first's qty.
    `rule(filled, working)` gives the qty, `working` counting the parent's other slices being
    sent and those before this one still to fire. A parent no longer active keeps the qty (its
    canceled slices are not a shortfall; the guards stop this one). Returns the qty written (or
    kept), None when the slice is no longer `submitting`."""
    key = {"b_pid": parent_id, "b_num": slice_num}
    row = (await conn.execute(SLICE_LOCK, key)).first()
    if row is None or row.status != SliceStatus.SUBMITTING.value:
        return None
    # The parent's lock first, on its own: a statement that waited for a row lock sees that
    # row's newest version but (PostgreSQL, read committed) the rest from its own start, so
    # the slices it sums must be read by a statement started after the lock was granted.
    await conn.execute(PARENT_LOCK, key)
    status, filled, working, coming = (await conn.execute(CATCH_UP_STATE, key)).one()
    if status != ParentStatus.ACTIVE.value:
        return int(row.qty)  # canceled meanwhile: the guards stop it, its plan unchanged
    qty: int = rule(int(filled), int(working) + int(coming))
    if qty != row.qty:
        await conn.execute(SET_CLAIMED_QTY, {**key, "b_qty": qty, "b_planned": planned_qty,
                                             "b_now": now})
    return qty
