"""SQLite on the event loop's own thread: aiosqlite's connection API over plain sqlite3.

aiosqlite runs every call on a thread of its own, and SQLAlchemy's adapter makes three or four
such calls per statement (cursor, execute, fetch, close). Each is a hand-off to that thread and
back through the loop's self-pipe, with the GIL changing hands twice: profiled at about 70
hand-offs and 6 ms of CPU per slice, most of the worker's time. SQLite's own work for these
statements takes microseconds (WAL with synchronous=NORMAL: a commit does not wait for the
disk), so the calls run inline instead. Only a lock held by another process could make one
wait: the busy timeout is kept short here, and "database is locked" is an OperationalError,
which every caller already treats as an outage to retry.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import Any

INLINE_BUSY_TIMEOUT_MS = 200
# Prepared statements kept per connection (Python's default is 128). Every text the worker can
# send fits: about 40 fixed statements, plus the claims of each size and the IN lists of each
# length, all prepared by the start-up warm-up (store/warmup.py), about 75 in all. A smaller
# cache drops the least recently used and prepares it again later (SQLite memory freed and
# taken again, for as long as the worker runs); a cache of any size that holds them all stops
# changing after the warm-up.
STATEMENT_CACHE = 96


class _RunNow:
    """Stands in for aiosqlite's job queue, which SQLAlchemy's adapter uses directly to set the
    isolation level: the job runs at once and its future is resolved."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            if future is not None:
                future.set_exception(exc)
            return
        if future is not None:
            future.set_result(result)


class InlineCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        self._cursor.execute(sql, parameters if parameters is not None else ())
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid


class InlineConnection:
    """The part of aiosqlite.Connection that SQLAlchemy's aiosqlite dialect calls."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._tx = _RunNow()

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    async def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return InlineCursor(self._conn.execute(sql, parameters if parameters is not None else ()))

    async def create_function(
        self, name: str, num_params: int, func: Callable[..., Any], deterministic: bool = False
    ) -> None:
        self._conn.create_function(name, num_params, func, deterministic=deterministic)

    def executemany_now(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """For bulk inserts inside the current transaction (store.bulk)."""
        self._conn.executemany(sql, rows)

    def begin_immediate(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()


def inline_creator(database: str) -> Callable[[], Any]:
    """An `async_creator` for create_async_engine: a new inline connection to `database`."""

    async def create() -> InlineConnection:
        conn = sqlite3.connect(
            database or ":memory:", check_same_thread=False, timeout=INLINE_BUSY_TIMEOUT_MS / 1000,
            cached_statements=STATEMENT_CACHE,
        )
        return InlineConnection(conn)

    return create
