"""Many rows into one table at once: below BULK_MIN_ROWS one multi-row INSERT, above it the
dialect's fastest path (PostgreSQL's binary COPY, SQLite's executemany; dialects.py)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from worker.store.dialects import dialect_for

# Below this, one multi-row INSERT through SQLAlchemy costs no more than the detour.
BULK_MIN_ROWS = 16


async def insert_rows(conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (column name → value, for every column but a generated key) in the
    caller's transaction. Rows of one call come from one builder: the first row's keys
    stand for all of them."""
    if not rows:
        return
    if len(rows) < BULK_MIN_ROWS:
        await conn.execute(insert(table), list(rows))
        return
    names = tuple(rows[0])
    pick = operator.itemgetter(*names)
    await insert_tuples(conn, table, names, [pick(row) for row in rows])


async def insert_tuples(
    conn: AsyncConnection, table: Table, names: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert `rows`, tuples of values in `names` order, in the caller's transaction. The
    intake's hot path: thirty slice rows per request, no dict per row."""
    if not rows:
        return
    if len(rows) < BULK_MIN_ROWS:
        await conn.execute(insert(table), [dict(zip(names, row, strict=True)) for row in rows])
        return
    await dialect_for(conn).copy(conn, table, names, rows)
