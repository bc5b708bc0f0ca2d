"""Statements of the per-slice path, built once with bound parameters.

SQLAlchemy computes a statement's cache key on every execution of a freshly built statement;
a statement built once keeps its key, so each execution skips straight to the compiled form.
Profiled, building and keying the statements was a third of the store's CPU per slice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    LargeBinary,
    String,
    Text,
    and_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)

from twap_schemas.common import ParentStatus, SliceStatus
from worker.store.tables import outbox, parents, slices, switches
from worker.store.types import UTCDateTime

KILL_SWITCH = "kill_switch"
BREAKER = "breaker"

_SLICE_KEY = and_(
    slices.c.parent_order_id == bindparam("b_pid", type_=String()),
    slices.c.slice_num == bindparam("b_num", type_=Integer()),
)
_NOW = bindparam("b_now", type_=UTCDateTime())

_PID = bindparam("b_pid", type_=String())
PARENT_PREFIX = "p_"


def _parent_column(column: Any) -> Any:
    # By the bound id rather than correlated: SQLite renders RETURNING without table names.
    return (
        select(column)
        .where(parents.c.parent_order_id == _PID)
        .scalar_subquery()
        .label(PARENT_PREFIX + column.name)
    )


def _switch_column(name: str, column: Any, label: str) -> Any:
    return select(column).where(switches.c.name == name).scalar_subquery().label(label)


# scheduled → submitting in one statement, returning the claimed slice, its parent (p_*) and
# both switches as they are now (NULL: a switch row is missing). No row: not scheduled.
CLAIM = (
    update(slices)
    .where(slices.c.parent_order_id == _PID)
    .where(slices.c.slice_num == bindparam("b_num", type_=Integer()))
    .where(slices.c.status == SliceStatus.SCHEDULED.value)
    .values(status=SliceStatus.SUBMITTING.value, updated_at=_NOW)
    .returning(
        *slices.c,
        *(_parent_column(column) for column in parents.c),
        _switch_column(KILL_SWITCH, switches.c.engaged, "kill_engaged"),
        _switch_column(KILL_SWITCH, switches.c.reason, "kill_reason"),
        _switch_column(BREAKER, switches.c.engaged, "breaker_engaged"),
        _switch_column(BREAKER, switches.c.reason, "breaker_reason"),
        _switch_column(BREAKER, switches.c.consecutive_failures, "breaker_failures"),
    )
)

# The guards' read right before a send, one statement: the parent's status, the slice's own
# status (someone else may have settled it) and both switches (NULL: a switch row is missing).
GUARD = (
    select(
        parents.c.status.label("parent_status"),
        slices.c.status.label("slice_status"),
        _switch_column(KILL_SWITCH, switches.c.engaged, "kill_engaged"),
        _switch_column(KILL_SWITCH, switches.c.reason, "kill_reason"),
        _switch_column(BREAKER, switches.c.engaged, "breaker_engaged"),
        _switch_column(BREAKER, switches.c.reason, "breaker_reason"),
        _switch_column(BREAKER, switches.c.consecutive_failures, "breaker_failures"),
    )
    .select_from(slices.join(parents, parents.c.parent_order_id == slices.c.parent_order_id))
    .where(_SLICE_KEY)
)

# A claimed slice whose order the broker could not be asked about yet says so in its reason
# (`twap status` shows it); the status stays `submitting`.
NOTE_CLAIMED = (
    update(slices)
    .where(_SLICE_KEY)
    .where(slices.c.status == SliceStatus.SUBMITTING.value)
    .values(reason=bindparam("b_reason", type_=Text()), updated_at=_NOW)
)

# A compare-and-set of every mutable column, from the status the caller read.
TRANSITION = (
    update(slices)
    .where(_SLICE_KEY)
    .where(slices.c.status == bindparam("b_old", type_=String()))
    .values(
        status=bindparam("b_status", type_=String()),
        updated_at=_NOW,
        reason=bindparam("b_reason", type_=Text()),
        broker_order_id=bindparam("b_broker", type_=String()),
        attempts=bindparam("b_attempts", type_=Integer()),
        sent_at=bindparam("b_sent", type_=UTCDateTime()),
    )
)

OUTBOX_INSERT = insert(outbox)

# One slice (or `b_n` of them) left the pending states: the parent's count goes down, under
# its row lock (held to the commit), returning what the completion check needs.
CLOSE_SLICES = (
    update(parents)
    .where(parents.c.parent_order_id == bindparam("b_pid", type_=String()))
    .values(open_slices=parents.c.open_slices - bindparam("b_n", type_=Integer()))
    .returning(parents.c.open_slices, parents.c.status)
)

LOCK_PARENT = (
    select(parents.c.status)
    .where(parents.c.parent_order_id == bindparam("b_pid", type_=String()))
    .with_for_update()
)

TALLY = (
    select(slices.c.status, func.count(), func.sum(slices.c.qty))
    .where(slices.c.parent_order_id == bindparam("b_pid", type_=String()))
    .group_by(slices.c.status)
)

COMPLETE_PARENT = (
    update(parents)
    .where(parents.c.parent_order_id == bindparam("b_pid", type_=String()))
    .where(parents.c.status == ParentStatus.ACTIVE.value)
    .values(status=ParentStatus.COMPLETED.value, updated_at=_NOW)
)

RESET_FAILURES = (
    update(switches)
    .where(switches.c.name == BREAKER)
    .where(switches.c.consecutive_failures != 0)
    .values(consecutive_failures=0)
)

# PostgreSQL: a slice's outcome as one statement, so it runs in autocommit: one round trip.
# The compare-and-set, its event, the breaker reset and the parent's open count, taken down
# by one only if the compare-and-set hit. That UPDATE waits for the parent's row lock and then
# reads the newest count, so the finisher that brings it to zero is the one that saw every
# other slice terminal: it alone completes the parent (slice_ops.maybe_complete).
# The event of a PostgreSQL statement below: inserted only if its `upd` step changed a row.
_OUTBOX_FROM_UPD = """
        INSERT INTO outbox (exchange, routing_key, message_id, type, correlation_id,
                            parent_order_id, headers, body, created_at)
        SELECT :o_exchange, :o_routing_key, :o_message_id, :o_type, :o_correlation_id,
               :o_parent_order_id, CAST(:o_headers AS JSON), :o_body, :b_now FROM upd
"""
_OUTBOX_PARAMS = (
    bindparam("o_exchange", type_=String()),
    bindparam("o_routing_key", type_=String()),
    bindparam("o_message_id", type_=String()),
    bindparam("o_type", type_=String()),
    bindparam("o_correlation_id", type_=String()),
    bindparam("o_parent_order_id", type_=String()),
    bindparam("o_headers", type_=JSON()),
    bindparam("o_body", type_=LargeBinary()),
)

PG_FINISH = text(
    f"""
    WITH upd AS (
        UPDATE slices SET status = :b_status, updated_at = :b_now, reason = :b_reason,
            broker_order_id = :b_broker, attempts = :b_attempts, sent_at = :b_sent
        WHERE parent_order_id = :b_pid AND slice_num = :b_num AND status = :b_old
        RETURNING slice_num
    ), par AS (
        UPDATE parents SET open_slices = open_slices - 1
        WHERE parent_order_id = :b_pid AND EXISTS (SELECT 1 FROM upd)
        RETURNING open_slices, status
    ), ev AS ({_OUTBOX_FROM_UPD}    ), rst AS (
        UPDATE switches SET consecutive_failures = 0
        WHERE name = 'breaker' AND consecutive_failures <> 0 AND :b_reset
          AND EXISTS (SELECT 1 FROM upd)
    )
    SELECT (SELECT count(*) FROM upd) AS updated, (SELECT open_slices FROM par) AS open_slices,
           (SELECT status FROM par) AS parent_status
    """
).bindparams(
    bindparam("b_pid", type_=String()),
    bindparam("b_num", type_=Integer()),
    bindparam("b_old", type_=String()),
    bindparam("b_status", type_=String()),
    bindparam("b_now", type_=UTCDateTime()),
    bindparam("b_reason", type_=Text()),
    bindparam("b_broker", type_=String()),
    bindparam("b_attempts", type_=Integer()),
    bindparam("b_sent", type_=UTCDateTime()),
    bindparam("b_reset", type_=Boolean()),
    *_OUTBOX_PARAMS,
)

# PostgreSQL: an active parent → completed, with its parent.completed event, as one statement
# (autocommit). Used once every slice is terminal and committed: the tally read just before
# cannot change any more, and the status check keeps a concurrent cancel or a second completer
# from writing a second event.
PG_COMPLETE = text(
    f"""
    WITH upd AS (
        UPDATE parents SET status = 'completed', updated_at = :b_now
        WHERE parent_order_id = :b_pid AND status = 'active'
        RETURNING parent_order_id
    ), ev AS ({_OUTBOX_FROM_UPD}    )
    SELECT count(*) AS updated FROM upd
    """
).bindparams(
    bindparam("b_pid", type_=String()),
    bindparam("b_now", type_=UTCDateTime()),
    *_OUTBOX_PARAMS,
)
