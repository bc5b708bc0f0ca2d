"""The start-up warm-up: every claim size and IN-list length compiled, and prepared on every
pooled connection before its first use, so none of them is first compiled on the dispatch path
or as a step in memory later; and it changes no row."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from tests.integration.test_in_list_statements import sql_texts
from tests.integration.test_store import make_plan
from tests.support.harness import Harness
from worker.core import events
from worker.store import grants, limits, parents
from worker.store.inlists import IN_MAX, IN_SIZES
from worker.store.repository import Store
from worker.store.slices import CLAIM_SIZES
from worker.store.tables import outbox, slices
from worker.store.warmup import WARMED

pytestmark = pytest.mark.integration


def compiled(store: Store) -> int:
    cache = store.engine.sync_engine._compiled_cache
    assert cache is not None
    return len(cache)


async def every_size(store: Store) -> None:
    """A claim of every size and a read by every IN-list length, of keys that exist nowhere."""
    now = datetime.now(UTC)
    for count in range(1, CLAIM_SIZES[-1] + 1):
        assert await store.claim_many([(f"none{n}", 1) for n in range(count)], now) == {}
    for length in range(1, IN_MAX + 1):
        names = [f"none{n}" for n in range(length)]
        async with store.transaction() as conn:
            assert await parents.existing_ids(conn, names) == set()
            assert await parents.strategies_of(conn, names) == {}
            assert await limits.rows(conn, names) == {}
            assert await grants.of_users(conn, names) == {}
        await store.outbox_remove([-n for n in range(1, length + 1)])


async def test_after_the_warm_up_no_batch_size_compiles_or_sends_a_new_statement(
    store: Store,
) -> None:
    with sql_texts(store) as warmed:
        ran = await store.warm_up(datetime.now(UTC))
    # 8 claim sizes and 5 lengths of each of the 6 IN-list statements.
    assert ran == len(CLAIM_SIZES) + 6 * len(IN_SIZES)
    assert len([t for t in warmed if "IN ((" in t]) == len(CLAIM_SIZES)
    before = compiled(store)
    with sql_texts(store) as later:
        await every_size(store)
    assert compiled(store) == before
    claims_and_lists = {t for t in later if " IN (" in t}
    assert claims_and_lists and claims_and_lists <= warmed


async def test_without_the_warm_up_the_same_batches_compile_statements(store: Store) -> None:
    # The other side of the test above: what the warm-up saves is real.
    await store.ping()
    before = compiled(store)
    await every_size(store)
    assert compiled(store) >= before + len(CLAIM_SIZES)


async def test_the_warm_up_changes_no_row(store: Store) -> None:
    now = datetime.now(UTC)
    parent, plan = make_plan(now)
    message = events.control_changed("breaker", True, reason="r", operator=None,
                                     automatic=False, at=now)
    await store.create_parent(parent, plan, now, [message])
    async with store.transaction() as conn:
        rows_before = (await conn.execute(select(slices).order_by(slices.c.slice_num))).all()
        outbox_before = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
    await store.warm_up(now)
    async with store.transaction() as conn:
        assert (await conn.execute(select(slices).order_by(slices.c.slice_num))).all() \
            == rows_before
        assert (await conn.execute(select(func.count()).select_from(outbox))).scalar() \
            == outbox_before == 1


async def prepared_texts(conn: AsyncConnection) -> set[str]:
    """The statements prepared on this PostgreSQL session (named: SQLAlchemy's asyncpg
    adapter names each one it prepares)."""
    rows = await conn.execute(text("SELECT statement FROM pg_prepared_statements"))
    return {statement for (statement,) in rows}


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_on_postgresql_every_pooled_connection_is_prepared_before_its_first_use(
    store: Store,
) -> None:
    await store.ping()  # a connection opened before the warm-up, back in the pool
    started = time.perf_counter()
    with sql_texts(store) as warmed:
        await store.warm_up(datetime.now(UTC))
    assert time.perf_counter() - started < 2.0  # one connection: the worker's start waits
    batch_texts = {t for t in warmed if " IN (" in t}
    assert len(batch_texts) == len(CLAIM_SIZES) + 6 * len(IN_SIZES)
    size = store.engine.pool.size()  # type: ignore[attr-defined]
    assert size == 15
    async with AsyncExitStack() as stack:
        held = [await stack.enter_async_context(store.engine.connect()) for _ in range(size)]
        for conn in held:  # each one distinct: all 15 are checked out at once
            assert batch_texts <= await prepared_texts(conn)


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_a_connection_opened_before_the_warm_up_is_prepared_at_its_next_checkout(
    store: Store,
) -> None:
    async with AsyncExitStack() as stack:
        early = [await stack.enter_async_context(store.engine.connect()) for _ in range(3)]
        for conn in early:
            await conn.execute(text("SELECT 1"))
    with sql_texts(store) as warmed:
        await store.warm_up(datetime.now(UTC))
    claims = {t for t in warmed if "IN ((" in t}
    assert len(claims) == len(CLAIM_SIZES)
    async with AsyncExitStack() as stack:
        again = [await stack.enter_async_context(store.engine.connect()) for _ in range(3)]
        for conn in again:
            assert claims <= await prepared_texts(conn)


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_without_the_warm_up_a_new_connection_prepares_nothing_ahead(
    store: Store,
) -> None:
    # The other side of the two tests above: the statements are there because of the replay.
    async with store.engine.connect() as conn:
        assert not {t for t in await prepared_texts(conn) if " IN (" in t}


async def test_a_connection_that_replaces_a_lost_one_is_warmed_without_a_failure(
    store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    # SQLite's pool has one connection, warmed by the warm-up itself: the replay matters when
    # it is replaced (an outage). On PostgreSQL the same path serves every other connection.
    await store.warm_up(datetime.now(UTC))
    async with store.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.info[WARMED] is True
        await conn.invalidate()
    async with store.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.info[WARMED] is True  # a new driver connection: its info started empty
        assert (await conn.execute(text("SELECT 7"))).scalar() == 7
    assert "store.connection_warm_up_failed" not in [r.getMessage() for r in caplog.records]
    assert await store.claim_many([("none", 1)], datetime.now(UTC)) == {}


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_a_statement_that_fails_in_the_replay_leaves_the_connection_usable(
    store: Store, caplog: pytest.LogCaptureFixture,
) -> None:
    await store.warm_up(datetime.now(UTC))
    store._replay.sent.insert(0, ("SELECT * FROM no_such_table", ()))
    async with AsyncExitStack() as stack:
        held = [await stack.enter_async_context(store.engine.connect()) for _ in range(2)]
        fresh = held[1]  # the first is the warm-up's own, prepared by the warm-up itself
        assert (await fresh.execute(text("SELECT 7"))).scalar() == 7
    [logged] = [r for r in caplog.records if r.getMessage() == "store.connection_warm_up_failed"]
    assert "no_such_table" in logged.error  # type: ignore[attr-defined]


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_a_store_that_fences_its_claims_warms_the_fenced_claims(store: Store) -> None:
    store.fence_claims(lambda: 4242)  # PostgreSQL fences on the leadership session
    with sql_texts(store) as warmed:
        await store.warm_up(datetime.now(UTC))
    fenced = [t for t in warmed if "IN ((" in t and "pg_locks" in t]
    assert len(fenced) == len(CLAIM_SIZES)
    assert not [t for t in warmed if "IN ((" in t and "pg_locks" not in t]


async def test_the_worker_warms_its_store_before_it_takes_requests(harness: Harness) -> None:
    worker = await harness.start_worker()
    cache = worker.store.engine.sync_engine._compiled_cache
    assert cache is not None
    claims = {str(c) for c in cache.values() if "IN ((" in str(c)}
    assert len(claims) == len(CLAIM_SIZES)  # no slice was ever claimed: the warm-up's
