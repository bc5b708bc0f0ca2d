"""Many rows into one table at once, without SQLAlchemy's per-row statement work.

Profiled on intake: applying a batch of 128 thirty-slice requests spent most of the store's time
in SQLAlchemy binding 3,968 slice rows one parameter at a time. Here each value goes through
its column type's bind processor once (the same conversion SQLAlchemy would apply), then:
PostgreSQL takes the rows with COPY (asyncpg's binary copy, inside the caller's transaction),
the inline SQLite connection with one executemany. Anything else falls back to SQLAlchemy.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from worker.store.sqlite_inline import InlineConnection

# Below this, one multi-row INSERT through SQLAlchemy costs no more than the detour.
BULK_MIN_ROWS = 16

_Processor = Callable[[Any], Any]


def _last_one_kept(process: _Processor) -> _Processor:
    """The processor, skipping repeats of the same object (a batch shares one `now`)."""
    last: list[Any] = [object(), None]

    def run(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, process(value)
        return last[1]

    return run


class _RowShape:
    """How a tuple of raw values (in `names` order) becomes what the driver takes: each value
    through its column type's bind processor, where the type has one."""

    def __init__(self, table: Table, dialect: Dialect, names: tuple[str, ...]) -> None:
        self.names = list(names)
        columns = {column.name: column for column in table.columns}
        self.processors: list[tuple[int, _Processor]] = []
        for index, name in enumerate(names):
            process = columns[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self.processors.append((index, _last_one_kept(process)))

    def records(self, rows: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
        if not self.processors:
            return rows
        out = []
        for row in rows:
            values = list(row)
            for index, process in self.processors:
                values[index] = process(values[index])
            out.append(tuple(values))
        return out


_shapes: dict[tuple[str, str, tuple[str, ...]], _RowShape] = {}


def _shape(table: Table, dialect: Dialect, names: tuple[str, ...]) -> _RowShape:
    key = (table.name, dialect.name, names)
    if key not in _shapes:
        _shapes[key] = _RowShape(table, dialect, names)
    return _shapes[key]


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
    dialect = conn.dialect
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if dialect.name == "postgresql":
        if not driver.is_in_transaction():  # type: ignore[union-attr]
            # SQLAlchemy begins lazily, at the first statement: begin it now, or the COPY
            # would commit on its own.
            await conn.execute(text("SELECT 1"))
        shape = _shape(table, dialect, names)
        await driver.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=shape.records(rows), columns=shape.names
        )
        return
    if isinstance(driver, InlineConnection):
        shape = _shape(table, dialect, names)
        columns, marks = ", ".join(shape.names), ", ".join("?" for _ in shape.names)
        driver.executemany_now(
            f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", shape.records(rows)
        )
        return
    await conn.execute(insert(table), [dict(zip(names, row, strict=True)) for row in rows])
