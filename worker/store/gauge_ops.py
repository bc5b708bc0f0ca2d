"""Cheap reads of the state operators watch: the switches, the outbox, pending slices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from twap_schemas.common import SliceStatus
from worker.core.records import SwitchState
from worker.store import outbox, switches
from worker.store.repository import Store
from worker.store.tables import slices, status_is


@dataclass(frozen=True, slots=True)
class StoreGauges:
    switches: SwitchState
    outbox_backlog: int
    pending_slices: int


def _count(status: SliceStatus) -> Any:
    return select(func.count()).select_from(slices).where(status_is(status.value)).scalar_subquery()


# Pending = scheduled + submitting, each counted from its partial index.
PENDING_COUNT = select(_count(SliceStatus.SCHEDULED) + _count(SliceStatus.SUBMITTING))


async def read_gauges(store: Store) -> StoreGauges:
    """One connection, three small queries (the pending count reads the partial indexes)."""
    async with store.engine.connect() as conn:
        state = await switches.read(conn)
        backlog = await outbox.backlog(conn)
        pending = (await conn.execute(PENDING_COUNT)).scalar_one()
    return StoreGauges(state, backlog, int(pending))
