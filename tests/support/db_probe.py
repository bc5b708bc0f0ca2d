"""A look at a worker's database from the test process, for the fault suite's checks.

A plain engine without the worker's SQLite write-lock tuning, so that watching a running worker
never holds its write lock. Reads only, but for `unrecord`, which sets up a crash state.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from worker.store.tables import fills, outbox, parents, slices

TERMINAL_PARENT = {"completed", "canceled"}
# Not terminal: still to send, being sent, or working at the broker.
PENDING_SLICE = {"scheduled", "submitting", "submitted"}
# Slices whose order reached the broker (a `closed` one only if it has a broker order id:
# catch-up may close a slice that had nothing left to send).
AT_BROKER = {"submitted", "filled"}


@dataclass(frozen=True, slots=True)
class SliceRow:
    parent_order_id: str
    slice_num: int
    client_order_id: str
    status: str
    reason: str | None
    broker_order_id: str | None = None
    filled_qty: int = 0

    @property
    def at_broker(self) -> bool:
        return self.status in AT_BROKER or (self.status == "closed"
                                            and self.broker_order_id is not None)


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
            slices.c.broker_order_id,
            slices.c.filled_qty,
        ).join(parents, parents.c.parent_order_id == slices.c.parent_order_id)
        if strategy_id is not None:
            query = query.where(parents.c.strategy_id == strategy_id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(slices.c.parent_order_id, slices.c.slice_num))
            return [SliceRow(*row) for row in rows]

    async def unrecord(self, submitted_event: dict[str, Any]) -> None:
        """Put a submitted slice back to `submitting`, as if its outcome was never committed:
        the record of `submitted` carries the submit's view, so its fills go too (the slice's,
        the parent's, the `fills` rows) and, if it ended, the parent's open count comes back."""
        pid, num = submitted_event["parent_order_id"], submitted_event["slice_num"]
        key = (slices.c.parent_order_id == pid) & (slices.c.slice_num == num)
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(slices).where(key))).one()
            parent = (await conn.execute(
                select(parents).where(parents.c.parent_order_id == pid))).one()
            ended = row.status not in PENDING_SLICE
            await conn.execute(update(slices).where(key).values(
                status="submitting", broker_order_id=None, filled_qty=0,
                fill_notional=Decimal(0)))
            await conn.execute(update(parents).where(parents.c.parent_order_id == pid).values(
                filled_qty=parent.filled_qty - row.filled_qty,
                notional=parent.notional - row.fill_notional,
                working_qty=parent.working_qty
                - (row.qty - row.filled_qty if row.status == "submitted" else 0),
                open_slices=parent.open_slices + (1 if ended else 0)))
            await conn.execute(delete(fills).where(
                fills.c.client_order_id == row.client_order_id))

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
