"""Kill switch and circuit breaker rows. Missing or unreadable state counts as engaged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import SliceStatus
from worker.core import events
from worker.core.outcomes import breaker_after
from worker.core.records import SwitchState
from worker.store import outbox
from worker.store.tables import switches

KILL_SWITCH = "kill_switch"
BREAKER = "breaker"

_MISSING = "switch state missing from the database (fail closed)"


def _column(name: str, column: Any, label: str) -> Any:
    return select(column).where(switches.c.name == name).scalar_subquery().label(label)


def columns() -> list[Any]:
    """Both switches as columns of another statement (a claim, the guards' read), read in
    that statement; NULL: a switch row is missing."""
    return [
        _column(KILL_SWITCH, switches.c.engaged, "kill_engaged"),
        _column(KILL_SWITCH, switches.c.reason, "kill_reason"),
        _column(BREAKER, switches.c.engaged, "breaker_engaged"),
        _column(BREAKER, switches.c.reason, "breaker_reason"),
        _column(BREAKER, switches.c.consecutive_failures, "breaker_failures"),
    ]


def from_row(row: Any) -> SwitchState:
    """The switches from a row carrying `columns()` (NULLs: a row is missing)."""
    if row.kill_engaged is None or row.breaker_engaged is None:
        return SwitchState.fail_closed(_MISSING)
    return SwitchState(
        kill_switch_engaged=bool(row.kill_engaged),
        kill_switch_reason=row.kill_reason,
        breaker_tripped=bool(row.breaker_engaged),
        breaker_reason=row.breaker_reason,
        consecutive_failures=int(row.breaker_failures or 0),
    )


async def read(conn: AsyncConnection) -> SwitchState:
    rows = {row.name: row for row in (await conn.execute(select(switches))).all()}
    kill, breaker = rows.get(KILL_SWITCH), rows.get(BREAKER)
    if kill is None or breaker is None:
        return SwitchState.fail_closed(_MISSING)
    return SwitchState(
        kill_switch_engaged=bool(kill.engaged),
        kill_switch_reason=kill.reason,
        breaker_tripped=bool(breaker.engaged),
        breaker_reason=breaker.reason,
        consecutive_failures=int(breaker.consecutive_failures or 0),
    )


async def set_switch(
    conn: AsyncConnection,
    name: str,
    engaged: bool,
    now: datetime,
    *,
    reason: str | None,
    operator: str | None,
    automatic: bool,
) -> bool:
    """Flip a switch and write its event; False (no event) when it already was in that state."""
    values: dict[str, object] = {
        "engaged": engaged,
        "reason": reason,
        "operator": operator,
        "automatic": automatic,
        "updated_at": now,
    }
    if name == BREAKER and not engaged:
        values["consecutive_failures"] = 0
    result = await conn.execute(
        update(switches)
        .where(switches.c.name == name)
        .where(switches.c.engaged.is_not(engaged))
        .values(**values)
    )
    if result.rowcount != 1:
        named = select(switches.c.name).where(switches.c.name == name)
        if (await conn.execute(named)).first() is not None:
            return False
        await conn.execute(insert(switches).values(name=name, consecutive_failures=0, **values))
    event = events.control_changed(
        name, engaged, reason=reason, operator=operator, automatic=automatic, at=now
    )
    await outbox.write(conn, [event], now)
    return True


# A sent order ends a run of failures: a statement that writes only when there is a count.
RESET_FAILURES = (
    update(switches)
    .where(switches.c.name == BREAKER)
    .where(switches.c.consecutive_failures != 0)
    .values(consecutive_failures=0)
)

_BREAKER_FOR_UPDATE = (
    select(switches.c.consecutive_failures, switches.c.engaged)
    .where(switches.c.name == BREAKER)
    .with_for_update()
)


async def record_outcomes(
    conn: AsyncConnection,
    outcomes: list[tuple[SliceStatus, str | None]],
    now: datetime,
    *,
    max_failures: int,
) -> None:
    """Count consecutive failed slices over `outcomes` (in the order they were recorded, in
    the caller's transaction); trip the breaker by itself at `max_failures`
    (core.outcomes.breaker_after decides)."""
    moving = [(s, r) for s, r in outcomes if s in (SliceStatus.SUBMITTED, SliceStatus.FAILED)]
    if not moving:
        return
    if all(status is SliceStatus.SUBMITTED for status, _ in moving):
        await conn.execute(RESET_FAILURES)
        return
    # Row-locked to the commit: concurrent finishers count one after the other.
    row = (await conn.execute(_BREAKER_FOR_UPDATE)).first()
    if row is None:
        return
    step = breaker_after(moving, int(row.consecutive_failures or 0), bool(row.engaged),
                         max_failures)
    await conn.execute(
        update(switches).where(switches.c.name == BREAKER)
        .values(consecutive_failures=step.consecutive_failures)
    )
    if step.trip_reason is not None:
        await set_switch(conn, BREAKER, True, now, reason=step.trip_reason, operator="worker",
                         automatic=True)
