"""The start-up warm-up: every claim size and IN-list length compiled (and prepared on one
connection) before the first request, so none of them is first compiled on the dispatch path
or as a step in memory later; and it changes no row."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from tests.integration.test_in_list_statements import sql_texts
from tests.integration.test_store import make_plan
from tests.support.harness import Harness
from worker.core import events
from worker.store import grants, limits, parents
from worker.store.inlists import IN_MAX, IN_SIZES
from worker.store.prepared import PER_CHECKOUT
from worker.store.repository import Store
from worker.store.slices import CLAIM_SIZES
from worker.store.tables import outbox, slices

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


@pytest.mark.parametrize("db_kind", ["postgresql"])
async def test_on_postgresql_the_warm_up_prepares_on_one_connection_and_is_quick(
    store: Store,
) -> None:
    # One connection, not the pool: the start of the worker waits for it.
    await store.ping()
    started = time.perf_counter()
    await store.warm_up(datetime.now(UTC))
    assert time.perf_counter() - started < 2.0  # generous; preparing on 15 took 0.5-0.9 s
    held = [await store.engine.connect() for _ in range(store.engine.pool.size())]  # type: ignore[attr-defined]
    try:
        prepared = []
        for conn in held:
            raw = await conn.get_raw_connection()
            cache = raw.dbapi_connection._prepared_statement_cache  # type: ignore[union-attr]
            prepared.append(len([text for text in cache if "IN ((" in text]))
    finally:
        for conn in held:
            await conn.close()
    # The warm-up's connection holds them all; each other one, on its one checkout since, took
    # at most the few texts of the shared list a checkout prepares (store/prepared.py).
    most, *others = sorted(prepared, reverse=True)
    assert most == len(CLAIM_SIZES)
    assert max(others) <= PER_CHECKOUT


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
