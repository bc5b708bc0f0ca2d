"""On PostgreSQL every pooled connection comes to hold the statements any of them prepared, a
few per checkout, prepared and never run (store/prepared.py). Checked on the server, in
pg_prepared_statements of each session, not in our own bookkeeping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from worker.store.engine import is_outage
from worker.store.prepared import PER_CHECKOUT, PreparedSpread
from worker.store.repository import Store

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("db_kind", ["postgresql"])]

NEXTVAL = "SELECT nextval('spread_probe') AS n"


@asynccontextmanager
async def whole_pool(engine: AsyncEngine) -> AsyncIterator[list[AsyncConnection]]:
    """Every connection of the pool, each checked out once (so each is a distinct session)."""
    held = [await engine.connect() for _ in range(engine.pool.size())]  # type: ignore[attr-defined]
    try:
        yield held
    finally:
        for conn in held:
            await conn.close()


@pytest.fixture
async def spread(database_url: str) -> AsyncIterator[tuple[AsyncEngine, PreparedSpread]]:
    """An engine of 15 connections with a spread of its own, to look into its list."""
    engine = create_async_engine(database_url, pool_size=15, max_overflow=0)
    yield engine, PreparedSpread().install(engine)
    await engine.dispose()


async def cache_of(conn: AsyncConnection) -> list[str]:
    raw = await conn.get_raw_connection()
    return list(raw.dbapi_connection._prepared_statement_cache)  # type: ignore[union-attr]


async def server_side(conn: AsyncConnection) -> set[str]:
    rows = await conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements")
    return {row[0] for row in rows}


async def test_every_connection_comes_to_hold_a_text_one_ran_and_none_runs_it(
    store: Store,
) -> None:
    async with store.transaction() as conn:
        await conn.exec_driver_sql("CREATE SEQUENCE spread_probe")
    async with store.engine.connect() as conn:
        assert (await conn.exec_driver_sql(NEXTVAL)).scalar() == 1
    # Enough checkouts of every connection to prepare the whole list a few at a time.
    for _ in range(40):
        async with whole_pool(store.engine):
            pass
    async with whole_pool(store.engine) as held:
        seen = [await server_side(conn) for conn in held]
        pids = {(await c.exec_driver_sql("SELECT pg_backend_pid()")).scalar() for c in held}
    assert len(pids) == 15
    assert [NEXTVAL in statements for statements in seen] == [True] * 15
    # Prepared on fourteen sessions, run on one: the sequence moved once.
    async with store.engine.connect() as conn:
        assert (await conn.exec_driver_sql("SELECT last_value FROM spread_probe")).scalar() == 1


async def test_a_checkout_prepares_exactly_a_few_of_the_texts_it_lacks(
    spread: tuple[AsyncEngine, PreparedSpread], database_url: str,
) -> None:
    engine, listed = spread
    plain = create_async_engine(database_url, pool_size=2, max_overflow=0)
    try:  # what a second connection holds without a spread (the first ran the dialect's set-up)
        async with plain.connect(), plain.connect() as second:
            baseline = len(await cache_of(second))
    finally:
        await plain.dispose()
    async with engine.connect() as conn:
        for n in range(10):
            await conn.exec_driver_sql(f"SELECT {n} AS n{n}")
    assert len(listed.texts) >= 10 + PER_CHECKOUT
    async with whole_pool(engine) as held:
        sizes = [len(await cache_of(c)) for c in held]
    # The first out is the one that ran the ten; each of the fourteen opened since took
    # PER_CHECKOUT texts of the list on its one checkout, no more, no fewer.
    assert sizes[1:] == [baseline + PER_CHECKOUT] * 14


async def test_a_text_that_cannot_be_prepared_elsewhere_is_dropped_not_fatal(
    store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="worker.store.prepared")
    async with store.engine.connect() as conn:
        # A temporary table exists on its own session only: no other can prepare this.
        await conn.exec_driver_sql("CREATE TEMPORARY TABLE mine (n int)")
        await conn.exec_driver_sql("SELECT n FROM mine")
        await conn.commit()
    for _ in range(40):
        async with whole_pool(store.engine) as held:
            for conn in held:
                assert (await conn.exec_driver_sql("SELECT 7")).scalar() == 7
    failures = [r for r in caplog.records if r.getMessage() == "store.prepare_failed"]
    assert len(failures) == 1  # once, then never offered again
    assert "mine" in failures[0].sql  # type: ignore[attr-defined]


async def test_sessions_killed_while_idle_fail_as_outages_and_drop_no_text(
    spread: tuple[AsyncEngine, PreparedSpread], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="worker.store.prepared")
    engine, listed = spread
    async with engine.connect() as conn:
        for n in range(10):
            await conn.exec_driver_sql(f"SELECT {n} AS lost{n}")
    async with whole_pool(engine):
        pass  # every connection exists, each still lacks most of the list
    async with engine.connect() as admin:
        pids = [row[0] for row in await admin.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")]
        for pid in pids:  # wait for each to be gone (PostgreSQL 14+)
            assert (await admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid}, 5000)")
                    ).scalar() is True
    assert len(pids) == 14
    # A dead session's checkout prepares nothing and raises nothing; the caller's statement
    # meets the dead session as it would without the spread: an outage, and a retry works.
    outages = 0
    for _ in range(30):
        try:
            async with engine.connect() as conn:
                assert (await conn.exec_driver_sql("SELECT 2")).scalar() == 2
        except DBAPIError as exc:
            assert is_outage(exc)
            outages += 1
    assert outages >= 1
    assert listed.failed == set()
    assert not [r for r in caplog.records if r.getMessage() == "store.prepare_failed"]
