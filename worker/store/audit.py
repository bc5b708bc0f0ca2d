"""The audit trail of limit and grant changes: who, when, the value before and after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from worker.store.tables import risk_audit


@dataclass(frozen=True, slots=True)
class AuditRow:
    kind: str  # limits | grants
    subject: str  # the strategy ('*' too) or the user
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    changed_by: str
    reason: str | None
    changed_at: datetime


async def write(conn: AsyncConnection, kind: str, subject: str, old: dict[str, Any] | None,
                new: dict[str, Any] | None, *, by: str, reason: str | None,
                now: datetime) -> None:
    await conn.execute(insert(risk_audit).values(
        kind=kind, subject=subject, old=old, new=new, changed_by=by, reason=reason,
        changed_at=now))


async def history(conn: AsyncConnection, kind: str, subject: str | None = None,
                  limit: int = 100) -> list[AuditRow]:
    """The latest changes first."""
    query = select(risk_audit).where(risk_audit.c.kind == kind)
    if subject is not None:
        query = query.where(risk_audit.c.subject == subject)
    result = await conn.execute(query.order_by(risk_audit.c.id.desc()).limit(limit))
    return [AuditRow(r.kind, r.subject, r.old, r.new, r.changed_by, r.reason, r.changed_at)
            for r in result]
