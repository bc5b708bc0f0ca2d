"""Reads for operators (the `twap` subcommands) that the worker itself never needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from worker.store.tables import parents, switches


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
