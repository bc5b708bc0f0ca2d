"""The transactional outbox, its one writer: every message of the worker is inserted here, in
the transaction of the change it reports; the relay reads it and deletes what the broker
confirmed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import CTE

from worker.core.records import OutboxMessage
from worker.store import bulk, inlists
from worker.store.rows import OUTBOX_COLUMNS, outbox_values, to_outbox
from worker.store.tables import outbox

_INSERT = insert(outbox)
_NOW = "b_now"


async def write(conn: AsyncConnection, messages: list[OutboxMessage], now: datetime) -> None:
    """Insert `messages` in the caller's transaction, in order (ids grow)."""
    if len(messages) == 1:
        await conn.execute(_INSERT, outbox_values(messages[0], now))
    elif messages:
        await bulk.insert_rows(conn, outbox, [outbox_values(m, now) for m in messages])


def insert_if(changed: CTE) -> Any:
    """PostgreSQL, inside one statement of data-modifying CTEs: one message, inserted only if
    the `changed` step returned a row. Its values are bound as `o_<column>` (`params`), its
    time as `b_now`."""
    values = [
        bindparam(_NOW, type_=outbox.c.created_at.type) if name == "created_at"
        else bindparam(f"o_{name}", type_=outbox.c[name].type)
        for name in OUTBOX_COLUMNS
    ]
    return (
        insert(outbox)
        .from_select(list(OUTBOX_COLUMNS), select(*values).select_from(changed))
        .cte(f"ev_{changed.name}")
    )


def params(message: OutboxMessage, now: datetime) -> dict[str, Any]:
    """The bound values of `insert_if` for `message`."""
    values = {f"o_{key}": value for key, value in outbox_values(message, now).items()}
    del values["o_created_at"]
    return values


async def fetch(conn: AsyncConnection, limit: int) -> list[tuple[int, OutboxMessage]]:
    """The oldest waiting messages, in commit order (ids grow), so per-parent order holds."""
    rows = await conn.execute(select(outbox).order_by(outbox.c.id).limit(limit))
    return [(row.id, to_outbox(row)) for row in rows]


# Built once, its IN list in a few fixed lengths (inlists.py).
_REMOVE = inlists.built_once(
    delete(outbox).where(outbox.c.id.in_(bindparam("ids", expanding=True))), "ids", -1)


async def remove(conn: AsyncConnection, ids: list[int]) -> None:
    for chunk in inlists.chunks(ids):
        await conn.execute(_REMOVE, {"ids": chunk})


async def backlog(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())
