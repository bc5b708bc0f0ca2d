"""The statements whose SQL text depends on a batch's size, compiled at start-up.

A claim of 1 to 128 slices and an IN list of 1 to 256 values are a few fixed texts each
(slices.CLAIM_SIZES, inlists.IN_SIZES). Each claim size is a statement SQLAlchemy compiles the
first time a batch of that size occurs (a claim of 64 slices: a 4 KiB statement, about 140 KiB
of objects), on the dispatch path and at moments spread over weeks, each a step up in the
process's memory; each IN-list length is a text the driver prepares the first time. Run here
once, with values that match no row, inside a transaction that is rolled back, they are
compiled (into the engine's cache, which every connection shares) and prepared on one
connection before the first request. One connection, not the whole pool: preparing them on
all 15 of a PostgreSQL pool took 0.5-0.9 s, added to every start before the first slice; the
other connections are given them a few at a time at checkout (store/prepared.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from worker.store import inlists
from worker.store import slices as slice_rows


def statements(fenced: bool, now: datetime) -> list[tuple[Any, dict[str, Any]]]:
    """Every claim size and every IN-list length of every registered statement (the modules
    that build them register them when imported; the repository imports them all)."""
    return [*slice_rows.claim_warm_ups(fenced, now), *inlists.warm_ups()]


async def warm_up(engine: AsyncEngine, *, fenced: bool, now: datetime) -> int:
    """Run `statements` on one connection, rolled back. Returns how many ran."""
    work = statements(fenced, now)
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            for statement, params in work:
                await conn.execute(statement, params)
        finally:
            await transaction.rollback()  # nothing matched; nothing is kept either way
    return len(work)
