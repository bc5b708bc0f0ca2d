"""Reads for operators (the `twap` subcommands) that the worker itself never needs: kept off
the runtime's Store (`Store.reads` is one of these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from twap_schemas.common import ParentStatus
from worker.core.records import ParentRecord
from worker.store.rows import to_parent
from worker.store.tables import parents, slices, switches


@dataclass(frozen=True, slots=True)
class SwitchDetail:
    name: str  # kill_switch | breaker
    engaged: bool
    reason: str | None
    operator: str | None
    automatic: bool
    consecutive_failures: int
    updated_at: datetime | None


async def switch_details(conn: AsyncConnection) -> dict[str, SwitchDetail]:
    rows = (await conn.execute(select(switches))).all()
    return {
        row.name: SwitchDetail(
            name=row.name,
            engaged=bool(row.engaged),
            reason=row.reason,
            operator=row.operator,
            automatic=bool(row.automatic),
            consecutive_failures=int(row.consecutive_failures or 0),
            updated_at=row.updated_at,
        )
        for row in rows
    }


async def parent_ids(conn: AsyncConnection, prefix: str, limit: int) -> list[str]:
    query = (
        select(parents.c.parent_order_id)
        .where(parents.c.parent_order_id.startswith(prefix, autoescape=True))
        .order_by(parents.c.created_at.desc())
        .limit(limit)
    )
    return [row.parent_order_id for row in await conn.execute(query)]


@dataclass(frozen=True, slots=True)
class ParentNotes:
    """What a ParentRecord leaves out and an operator wants to see."""

    cancel_reason: str | None
    updated_at: datetime | None


async def parent_notes(conn: AsyncConnection, parent_id: str) -> ParentNotes | None:
    row = (
        await conn.execute(
            select(parents.c.cancel_reason, parents.c.updated_at).where(
                parents.c.parent_order_id == parent_id
            )
        )
    ).first()
    return None if row is None else ParentNotes(row.cancel_reason, row.updated_at)


class OperatorReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def list_parents(
        self, *, active: bool = False, strategy: str | None = None, symbol: str | None = None,
        since: datetime | None = None, limit: int = 50,
    ) -> list[tuple[ParentRecord, dict[str, tuple[int, int]]]]:
        """Parents, newest first, each with (count, qty) per slice status."""
        query = select(parents).order_by(parents.c.created_at.desc()).limit(limit)
        if active:
            query = query.where(parents.c.status == ParentStatus.ACTIVE.value)
        if strategy:
            query = query.where(parents.c.strategy_id == strategy)
        if symbol:
            query = query.where(parents.c.symbol == symbol.upper())
        if since:
            query = query.where(parents.c.created_at >= since)
        async with self.engine.connect() as conn:
            found = [to_parent(row) for row in await conn.execute(query)]
            ids = [p.parent_order_id for p in found]
            tallies: dict[str, dict[str, tuple[int, int]]] = {i: {} for i in ids}
            if ids:
                rows = await conn.execute(
                    select(slices.c.parent_order_id, slices.c.status, func.count(),
                           func.sum(slices.c.qty))
                    .where(slices.c.parent_order_id.in_(ids))
                    .group_by(slices.c.parent_order_id, slices.c.status)
                )
                for pid, status, count, qty in rows:
                    tallies[pid][status] = (int(count), int(qty))
        return [(p, tallies[p.parent_order_id]) for p in found]

    async def switch_details(self) -> dict[str, SwitchDetail]:
        """Both switches with who set them and when; raises when unreadable (no fail-closed
        default here: an operator must see that the state cannot be read)."""
        async with self.engine.connect() as conn:
            return await switch_details(conn)

    async def parent_notes(self, parent_id: str) -> ParentNotes | None:
        async with self.engine.connect() as conn:
            return await parent_notes(conn, parent_id)

    async def parent_ids(self, prefix: str = "", limit: int = 50) -> list[str]:
        """Parent ids starting with `prefix`, newest first (shell completion)."""
        async with self.engine.connect() as conn:
            return await parent_ids(conn, prefix, limit)
