"""Which database errors count as an outage (retried later) rather than a bug."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import create_async_engine

from worker.store.engine import is_conflict, is_outage


def test_pool_checkout_timeout_is_an_outage() -> None:
    """No free connection in time: nothing ran, so the write is retried, not given up."""
    assert is_outage(PoolTimeout("QueuePool limit of size 2 overflow 0 reached"))


def test_constraint_violation_is_not_an_outage() -> None:
    """An integrity error is a bug or a race to report, never retried as an outage."""
    assert not is_outage(IntegrityError("INSERT ...", {}, Exception("duplicate key")))


@pytest.mark.integration
@pytest.mark.parametrize("db_kind", ["postgresql"])  # SQLite serializes writers: no deadlock
async def test_a_real_postgresql_deadlock_is_a_conflict(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE dl (id int PRIMARY KEY, v int)"))
            await conn.execute(text("INSERT INTO dl VALUES (1, 0), (2, 0)"))
        both = asyncio.Barrier(2)

        async def cross(first: int, second: int) -> None:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE dl SET v = v + 1 WHERE id = :i"), {"i": first})
                await both.wait()
                await conn.execute(text("UPDATE dl SET v = v + 1 WHERE id = :i"), {"i": second})

        results = await asyncio.gather(cross(1, 2), cross(2, 1), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1  # PostgreSQL breaks the deadlock by rolling one back
        assert is_conflict(errors[0])
    finally:
        await engine.dispose()
