"""Every new SQLite connection of the store's engine gets its settings, the page cache cap among
them: a connection opened after another was dropped is set up the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from worker.store.engine import make_engine


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
