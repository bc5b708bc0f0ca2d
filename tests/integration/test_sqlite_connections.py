"""Every new SQLite connection of the store's engine gets its settings, the page cache cap among
them: a connection opened after another was dropped is set up the same way."""

from __future__ import annotations

import ctypes
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.support import services
from worker.store.engine import make_engine
from worker.store.sqlite_inline import InlineConnection


@pytest.mark.parametrize("query", ["", "?uri=true"], ids=["inline", "aiosqlite"])
async def test_every_new_connection_has_a_2_mib_page_cache(tmp_path: Path, query: str) -> None:
    """`PRAGMA cache_size` reads -2048 (KiB) on the first connection and on the one that
    replaces it; SQLite's compiled-in default is -2000."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}{query}")
    try:
        sizes, drivers = [], []
        for _ in range(2):
            async with engine.connect() as conn:
                sizes.append((await conn.execute(text("PRAGMA cache_size"))).scalar_one())
                drivers.append((await conn.get_raw_connection()).driver_connection)
                await conn.invalidate()  # the pool opens a new connection for the next checkout
        assert sizes == [-2048, -2048]
        assert drivers[0] is not drivers[1]
    finally:
        await engine.dispose()


def prepared_statements(connection: sqlite3.Connection) -> int:
    """How many prepared statements SQLite holds open on `connection` (sqlite3_next_stmt)."""
    try:
        library = ctypes.CDLL("libsqlite3.so.0")
    except OSError:
        services.unavailable("libsqlite3.so.0 not loadable: SQLite is linked into Python here",
                             "the machines this project runs on link Python to libsqlite3")
    library.sqlite3_next_stmt.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    library.sqlite3_next_stmt.restype = ctypes.c_void_p
    # CPython's sqlite3.Connection starts with its object header, then the `sqlite3 *` handle.
    handle = ctypes.c_void_p.from_address(id(connection) + object.__basicsize__).value
    count, statement = 0, library.sqlite3_next_stmt(handle, None)
    while statement:
        count += 1
        statement = library.sqlite3_next_stmt(handle, statement)
    return count


async def test_an_inline_connection_keeps_at_most_96_prepared_statements(tmp_path: Path) -> None:
    """After 150 distinct statements (an IN list of each length 1..150), the connection still
    holds 96 prepared statements (every text the worker sends fits); Python's default cache
    would hold 128."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    try:
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert isinstance(driver, InlineConnection)
            for length in range(1, 151):
                marks = ", ".join("?" for _ in range(length))
                await conn.exec_driver_sql(f"SELECT 1 WHERE 1 IN ({marks})", tuple(range(length)))
            assert prepared_statements(driver._conn) == 96
    finally:
        await engine.dispose()
