"""A look at a worker's database from the test process, for the fault suite's checks.

A plain engine without the worker's SQLite write-lock tuning, so that watching a running worker
never holds its write lock. Reads only, but for `unrecord`, which sets up a crash state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from worker.store.tables import outbox, parents, slices

TERMINAL_PARENT = {"completed", "canceled"}
PENDING_SLICE = {"scheduled", "submitting"}


@dataclass(frozen=True, slots=True)
class SliceRow:
    parent_order_id: str
    slice_num: int
    client_order_id: str
    status: str
    reason: str | None


class DbProbe:
    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(url, poolclass=NullPool)

    async def close(self) -> None:
        await self.engine.dispose()

    async def parents(self, strategy_id: str | None = None) -> dict[str, str]:
        """parent_order_id → status (of one strategy, or all)."""
        query = select(parents.c.parent_order_id, parents.c.status)
        if strategy_id is not None:
            query = query.where(parents.c.strategy_id == strategy_id)
        async with self.engine.connect() as conn:
            return {pid: status for pid, status in await conn.execute(query)}

    async def slices(self, strategy_id: str | None = None) -> list[SliceRow]:
        query = select(
            slices.c.parent_order_id,
            slices.c.slice_num,
            slices.c.client_order_id,
            slices.c.status,
            slices.c.reason,
        ).join(parents, parents.c.parent_order_id == slices.c.parent_order_id)
        if strategy_id is not None:
            query = query.where(parents.c.strategy_id == strategy_id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(slices.c.parent_order_id, slices.c.slice_num))
            return [SliceRow(*row) for row in rows]

    async def unrecord(self, submitted_event: dict[str, Any]) -> None:
        """Put a submitted slice back to `submitting`, as if its outcome was never committed."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(slices)
                .where(slices.c.parent_order_id == submitted_event["parent_order_id"])
                .where(slices.c.slice_num == submitted_event["slice_num"])
                .values(status="submitting", broker_order_id=None)
            )

    async def outbox_backlog(self) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())

    async def all_terminal(self, strategy_id: str, expected_parents: int) -> bool:
        """Every expected parent exists and is completed or canceled."""
        found = await self.parents(strategy_id)
        return len(found) == expected_parents and set(found.values()) <= TERMINAL_PARENT


def by_client_order_id(rows: list[SliceRow]) -> dict[str, SliceRow]:
    return {row.client_order_id: row for row in rows}


def count_statuses(rows: list[SliceRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def ledger_counts(lines: list[dict[str, Any]]) -> dict[str, int]:
    """client_order_id → how many orders the broker received with it."""
    counts: dict[str, int] = {}
    for line in lines:
        key = str(line["client_order_id"])
        counts[key] = counts.get(key, 0) + 1
    return counts
