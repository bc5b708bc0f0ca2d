"""What differs between SQLite and PostgreSQL, behind one small Protocol.

The Store picks the implementation once, when it is built on an engine; nothing else in the
store asks which database it talks to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Table, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from worker.store.rowshape import shape_for
from worker.store.sqlite_inline import InlineConnection


class Dialect(Protocol):
    name: str
    # An outcome other than `failed` may be written as one statement without a transaction
    # (data-modifying CTEs: outcomes.finish_alone); `failed` moves the breaker and needs one.
    one_statement_outcomes: bool
    # Claims can require, in their own statement, that the leadership session still holds
    # its lock (slices.FENCED_CLAIM); SQLite's lock is the process's own file lock.
    fences_claims: bool

    def single(self, engine: AsyncEngine) -> AsyncEngine:
        """The engine to run a one-statement transaction on (no BEGIN/COMMIT if it can)."""
        ...

    def insert_ignoring_conflicts(self, table: Table) -> Insert:
        """INSERT that skips rows whose key exists already."""
        ...

    async def copy(self, conn: AsyncConnection, table: Table, names: tuple[str, ...],
                   rows: Sequence[tuple[Any, ...]]) -> None:
        """Many rows (tuples in `names` order) in the caller's transaction, the fastest way
        the driver has."""
        ...

    async def lock_keys(self, conn: AsyncConnection, keys: Sequence[str]) -> None:
        """Hold a lock per key to the end of the caller's transaction (callers sort the keys,
        so two transactions never wait on each other crosswise)."""
        ...


class PostgreSQL:
    name = "postgresql"
    one_statement_outcomes = True
    fences_claims = True

    def single(self, engine: AsyncEngine) -> AsyncEngine:
        # One statement needs no BEGIN/COMMIT round trips.
        return engine.execution_options(isolation_level="AUTOCOMMIT")

    def insert_ignoring_conflicts(self, table: Table) -> Insert:
        return pg_insert(table).on_conflict_do_nothing()

    async def copy(self, conn: AsyncConnection, table: Table, names: tuple[str, ...],
                   rows: Sequence[tuple[Any, ...]]) -> None:
        driver = (await conn.get_raw_connection()).driver_connection
        if not driver.is_in_transaction():  # type: ignore[union-attr]
            # SQLAlchemy begins lazily, at the first statement: begin it now, or the COPY
            # would commit on its own.
            await conn.execute(text("SELECT 1"))
        shape = shape_for(table, conn.dialect, names)
        await driver.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=shape.records(rows), columns=shape.names
        )

    async def lock_keys(self, conn: AsyncConnection, keys: Sequence[str]) -> None:
        for key in keys:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _key64(key)})


def _key64(key: str) -> int:
    """A stable signed 64-bit advisory lock key for a text key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


class SQLite:
    name = "sqlite"
    one_statement_outcomes = False
    fences_claims = False

    def single(self, engine: AsyncEngine) -> AsyncEngine:
        return engine  # BEGIN IMMEDIATE (the engine's begin hook) either way

    def insert_ignoring_conflicts(self, table: Table) -> Insert:
        return sqlite_insert(table).on_conflict_do_nothing()

    async def copy(self, conn: AsyncConnection, table: Table, names: tuple[str, ...],
                   rows: Sequence[tuple[Any, ...]]) -> None:
        driver = (await conn.get_raw_connection()).driver_connection
        if not isinstance(driver, InlineConnection):  # aiosqlite's thread (URL with options)
            await conn.execute(insert(table), [dict(zip(names, r, strict=True)) for r in rows])
            return
        shape = shape_for(table, conn.dialect, names)
        columns, marks = ", ".join(shape.names), ", ".join("?" for _ in shape.names)
        driver.executemany_now(
            f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", shape.records(rows)
        )

    async def lock_keys(self, conn: AsyncConnection, keys: Sequence[str]) -> None:
        """Nothing to take: every write transaction begins IMMEDIATE, holding the database's
        one write lock from its start to its commit."""


_BY_NAME: dict[str, Dialect] = {"postgresql": PostgreSQL(), "sqlite": SQLite()}


def dialect_for(engine: AsyncEngine | AsyncConnection) -> Dialect:
    """The one implementation for this engine's database (or a connection's)."""
    try:
        return _BY_NAME[engine.dialect.name]
    except KeyError:
        raise ValueError(f"unsupported database {engine.dialect.name!r} "
                         "(SQLite or PostgreSQL)") from None
