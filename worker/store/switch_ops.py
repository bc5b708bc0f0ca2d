"""Kill switch and circuit breaker rows. Missing or unreadable state counts as engaged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import SliceStatus
from worker.core import events
from worker.core.records import SwitchState
from worker.store.prepared import BREAKER, KILL_SWITCH, RESET_FAILURES
from worker.store.rows import outbox_values
from worker.store.tables import outbox, switches

__all__ = ["BREAKER", "KILL_SWITCH"]


def switches_from_row(row: Any) -> SwitchState:
    """The switches from a row of prepared.PARENT_WITH_SWITCHES (NULLs: a row is missing)."""
    if row.kill_engaged is None or row.breaker_engaged is None:
        return SwitchState.fail_closed("switch state missing from the database (fail closed)")
    return SwitchState(
        kill_switch_engaged=bool(row.kill_engaged),
        kill_switch_reason=row.kill_reason,
        breaker_tripped=bool(row.breaker_engaged),
        breaker_reason=row.breaker_reason,
        consecutive_failures=int(row.breaker_failures or 0),
    )


async def read_switches(conn: AsyncConnection) -> SwitchState:
    rows = {row.name: row for row in (await conn.execute(select(switches))).all()}
    kill, breaker = rows.get(KILL_SWITCH), rows.get(BREAKER)
    if kill is None or breaker is None:
        return SwitchState.fail_closed("switch state missing from the database (fail closed)")
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
        exists = (await conn.execute(select(switches.c.name).where(switches.c.name == name))).first()
        if exists is not None:
            return False
        await conn.execute(insert(switches).values(name=name, consecutive_failures=0, **values))
    event = events.control_changed(
        name, engaged, reason=reason, operator=operator, automatic=automatic
    )
    await conn.execute(insert(outbox), [outbox_values(event, now)])
    return True


async def record_slice_outcome(
    conn: AsyncConnection,
    status: SliceStatus,
    reason: str | None,
    now: datetime,
    *,
    max_failures: int,
) -> None:
    """Count consecutive failed slices; trip the breaker by itself at `max_failures`."""
    if status is SliceStatus.SUBMITTED:
        await conn.execute(RESET_FAILURES)
        return
    if status is not SliceStatus.FAILED:
        return
    await conn.execute(
        update(switches)
        .where(switches.c.name == BREAKER)
        .values(consecutive_failures=switches.c.consecutive_failures + 1)
    )
    row = (
        await conn.execute(
            select(switches.c.consecutive_failures, switches.c.engaged).where(
                switches.c.name == BREAKER
            )
        )
    ).first()
    if row is not None and not row.engaged and row.consecutive_failures >= max_failures:
        await set_switch(
            conn,
            BREAKER,
            True,
            now,
            reason=f"{row.consecutive_failures} consecutive slice failures; last: {reason}",
            operator="worker",
            automatic=True,
        )
