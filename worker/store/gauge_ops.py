"""Cheap reads of the state operators watch: the switches, the outbox, pending slices."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from worker.core.records import SwitchState
from worker.core.states import PENDING
from worker.store import outbox_ops, switch_ops
from worker.store.repository import Store
from worker.store.tables import slices

_PENDING = sorted(status.value for status in PENDING)


@dataclass(frozen=True, slots=True)
class StoreGauges:
    switches: SwitchState
    outbox_backlog: int
    pending_slices: int


async def read_gauges(store: Store) -> StoreGauges:
    """One connection, three small queries (the pending count walks the status index)."""
    async with store.engine.connect() as conn:
        switches = await switch_ops.read_switches(conn)
        backlog = await outbox_ops.backlog(conn)
        pending = (
            await conn.execute(
                select(func.count()).select_from(slices).where(slices.c.status.in_(_PENDING))
            )
        ).scalar_one()
    return StoreGauges(switches, backlog, int(pending))
