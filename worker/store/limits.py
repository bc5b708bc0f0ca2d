"""Risk limit rows (per strategy, and the default row `*`), what a strategy already uses
against them (open parents, the day's notional), and their changes with the audit row and
the `control.limits.changed` event.

Counting what a strategy uses and accepting one more parent must not interleave with another
batch doing the same, or both could pass a limit only one fits: `lock` serializes the batches
of a strategy to their commit (PostgreSQL: a transaction advisory lock per strategy; SQLite:
the write transaction, BEGIN IMMEDIATE, already does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from twap_schemas.common import ParentStatus
from worker.core import events
from worker.core.risk import DEFAULT_ROW, Limits, Usage, effective
from worker.store import audit, inlists, outbox
from worker.store.dialects import dialect_for
from worker.store.tables import parent_notionals, parents, risk_limits

# Parents that count against max_open_parents: any not yet ended.
ENDED = (ParentStatus.COMPLETED.value, ParentStatus.CANCELED.value)


# Built once, with their IN lists in a few fixed lengths (inlists.py): read for every batch.
_ROWS = inlists.built_once(
    select(risk_limits.c.strategy_id, risk_limits.c.limits).where(
        risk_limits.c.strategy_id.in_(bindparam("names", expanding=True))),
    "names", "")
_OPEN_PARENTS = (
    select(func.count()).select_from(parents)
    .where(parents.c.strategy_id == bindparam("b_strategy", type_=String()))
    .where(parents.c.status.notin_(ENDED))
)
_NOTIONALS = (
    select(parent_notionals.c.notional)
    .where(parent_notionals.c.strategy_id == bindparam("b_strategy", type_=String()))
    .where(parent_notionals.c.trade_date == bindparam("b_date", type_=String()))
)


async def rows(conn: AsyncConnection, strategies: Iterable[str]) -> dict[str, Limits]:
    """The rows of these strategies and the default row, those that exist."""
    found: dict[str, Limits] = {}
    for chunk in inlists.chunks(sorted({*strategies, DEFAULT_ROW})):
        for row in await conn.execute(_ROWS, {"names": chunk}):
            found[row.strategy_id] = Limits.from_json(row.limits)
    return found


async def effective_for(conn: AsyncConnection, strategies: Iterable[str]) -> dict[str, Limits]:
    """The limits that apply to each strategy (its row over the default row)."""
    wanted = set(strategies)
    found = await rows(conn, wanted)
    default = found.get(DEFAULT_ROW)
    return {s: effective(default, found.get(s)) for s in wanted}


async def lock(conn: AsyncConnection, strategies: Iterable[str]) -> None:
    """Hold the strategies' intake lock to the end of the caller's transaction."""
    await dialect_for(conn).lock_keys(conn, [f"risk:{s}" for s in sorted(set(strategies))])


async def usage(conn: AsyncConnection, strategy: str, trade_date: date) -> Usage:
    """Open parents of the strategy, and the notional accepted for the trade date."""
    open_parents = (await conn.execute(_OPEN_PARENTS, {"b_strategy": strategy})).scalar_one()
    notionals = (await conn.execute(
        _NOTIONALS, {"b_strategy": strategy, "b_date": trade_date.isoformat()})).scalars()
    # Summed here: the column keeps exact decimal text, which SQL would sum as floats.
    return Usage(int(open_parents), sum(notionals, Decimal(0)))


async def record_notional(conn: AsyncConnection, parent_order_id: str, strategy: str,
                          trade_date: date, notional: Decimal, reference: Decimal) -> None:
    await conn.execute(insert(parent_notionals).values(
        parent_order_id=parent_order_id, strategy_id=strategy,
        trade_date=trade_date.isoformat(), notional=notional, reference_price=reference))


async def set_limits(conn: AsyncConnection, strategy: str, changes: Mapping[str, Any], *,
                     by: str, reason: str | None, now: datetime) -> tuple[Limits | None, Limits]:
    """Apply a `limits.set` to one row (created if missing), with its audit row and event;
    returns the row before (None: there was none) and after. Row-locked: concurrent changes
    apply one after the other, each audited against the one before."""
    await lock(conn, [strategy])
    row = (await conn.execute(
        select(risk_limits.c.limits).where(risk_limits.c.strategy_id == strategy)
        .with_for_update()
    )).first()
    old = Limits.from_json(row.limits) if row is not None else None
    new = (old or Limits()).changed(changes)
    values = {"limits": new.to_json(), "updated_by": by, "updated_at": now}
    if row is None:
        await conn.execute(insert(risk_limits).values(strategy_id=strategy, **values))
    else:
        await conn.execute(update(risk_limits).where(risk_limits.c.strategy_id == strategy)
                           .values(**values))
    old_json = old.to_json() if old is not None else None
    await audit.write(conn, "limits", strategy, old_json, new.to_json(), by=by, reason=reason,
                      now=now)
    await outbox.write(conn, [events.limits_changed(strategy, old_json, new.to_json(),
                                                    operator=by, reason=reason, at=now)], now)
    return old, new


async def all_rows(conn: AsyncConnection) -> dict[str, Limits]:
    result = await conn.execute(select(risk_limits.c.strategy_id, risk_limits.c.limits)
                                .order_by(risk_limits.c.strategy_id))
    return {row.strategy_id: Limits.from_json(row.limits) for row in result}
