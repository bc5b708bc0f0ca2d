"""The transactional outbox: read what is waiting, delete what the broker confirmed."""

from __future__ import annotations

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from worker.core.records import OutboxMessage
from worker.store.rows import to_outbox
from worker.store.tables import outbox


async def fetch(conn: AsyncConnection, limit: int) -> list[tuple[int, OutboxMessage]]:
    """The oldest waiting messages, in commit order (ids grow), so per-parent order holds."""
    rows = await conn.execute(select(outbox).order_by(outbox.c.id).limit(limit))
    return [(row.id, to_outbox(row)) for row in rows]


# Built once: a statement built per call with `.in_(ids)` is a reference cycle holding the ids,
# and one alive during a full collection is frozen for good (see observability/gcpause.py).
_REMOVE = delete(outbox).where(outbox.c.id.in_(bindparam("ids", expanding=True)))


async def remove(conn: AsyncConnection, ids: list[int]) -> None:
    for start in range(0, len(ids), 1000):
        await conn.execute(_REMOVE, {"ids": ids[start : start + 1000]})


async def backlog(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())
