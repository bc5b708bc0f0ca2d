"""The statements whose SQL text depends on a batch's size, compiled and prepared at start-up.

A claim of 1 to 128 slices and an IN list of 1 to 256 values are a few fixed texts each
(slices.CLAIM_SIZES, inlists.IN_SIZES), but each text is compiled by SQLAlchemy and prepared by
the driver, per connection, the first time a batch of that size occurs: on the dispatch path
(a claim of 64 slices compiles a 4 KiB statement into about 140 KiB of objects), and at moments
spread over weeks, each one a step up in the process's memory. Run here once on every pooled
connection, with values that match no row, inside a transaction that is rolled back, they are
all ready before the first request, and the memory they take is taken before it.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from worker.store import inlists
from worker.store import slices as slice_rows


def statements(fenced: bool, now: datetime) -> list[tuple[Any, dict[str, Any]]]:
    """Every claim size and every IN-list length of every registered statement."""
    return [*slice_rows.claim_warm_ups(fenced, now), *inlists.warm_ups()]


async def _run_all(conn: AsyncConnection, work: list[tuple[Any, dict[str, Any]]]) -> None:
    transaction = await conn.begin()
    try:
        for statement, params in work:
            await conn.execute(statement, params)
    finally:
        await transaction.rollback()  # nothing matched; nothing is kept either way


async def warm_up(engine: AsyncEngine, *, fenced: bool, now: datetime) -> int:
    """Run `statements` on every connection of the engine's pool at once (the pool has no
    overflow: engine.make_engine). Returns how many statements ran in all."""
    work = statements(fenced, now)
    size = engine.pool.size()  # type: ignore[attr-defined]
    async with AsyncExitStack() as stack:
        held = [await stack.enter_async_context(engine.connect()) for _ in range(size)]
        await asyncio.gather(*(_run_all(conn, work) for conn in held))
    return len(work) * len(held)
