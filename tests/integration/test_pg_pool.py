"""The PostgreSQL pool keeps the connections it opened: a busy moment that needs more than
`pool_size` connections does not close them on return, to open them again at the next one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event, text

from worker.store.engine import PG_EXTRA_CONNECTIONS
from worker.store.repository import Store

pytestmark = pytest.mark.integration

POOL_SIZE = 2


async def test_connections_beyond_the_pool_size_stay_open_for_the_next_busy_moment(
    pg_db: str,
) -> None:
    store = Store.from_url(pg_db, pool_size=POOL_SIZE)
    opened: list[int] = []

    def connected(*_: Any) -> None:
        opened.append(1)

    event.listen(store.engine.sync_engine, "connect", connected)
    busy = POOL_SIZE + PG_EXTRA_CONNECTIONS
    try:
        for _ in range(3):
            gate = asyncio.Event()
            ready = 0

            async def hold(gate: asyncio.Event) -> None:
                nonlocal ready
                async with store.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                    ready += 1
                    if ready == busy:
                        gate.set()
                    await gate.wait()

            await asyncio.wait_for(asyncio.gather(*(hold(gate) for _ in range(busy))), 10)
        assert len(opened) == busy
        assert store.engine.sync_engine.pool.checkedin() == busy  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_statements_cached_by_the_driver_arm_no_expiry_timers(pg_db: str) -> None:
    """asyncpg expires each statement it caches after a lifetime with a timer that, with its
    entry, is a reference cycle; one alive at a full collection is frozen with its survivors
    and never freed. The store's connections cache without a lifetime (the cache stays
    bounded by its size), so no such timer is ever pending."""
    store = Store.from_url(pg_db, pool_size=POOL_SIZE)
    try:
        async with store.engine.connect() as conn:
            for n in range(5):
                await conn.execute(text(f"SELECT {n} AS v"))
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            await driver.fetch("SELECT 1")  # through the driver's own statement cache
        loop = asyncio.get_running_loop()
        timers = [h for h in loop._scheduled  # type: ignore[attr-defined]
                  if type(getattr(h._callback, "__self__", None)).__name__ == "_StatementCache"]
        assert timers == []
    finally:
        await store.close()
