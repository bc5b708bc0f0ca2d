"""Each slice's turn under max_slices_per_minute: when it was let through (maybe ahead of now,
a wait for its turn), per strategy. Counted over the last minute by core.risk.rate_turn."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from worker.core.risk import WINDOW
from worker.store.tables import slice_turns


async def recent(conn: AsyncConnection, strategy: str, now: datetime) -> list[datetime]:
    """The strategy's turns in the minute before `now`, and those given ahead of it."""
    result = await conn.execute(
        select(slice_turns.c.turn_at)
        .where(slice_turns.c.strategy_id == strategy)
        .where(slice_turns.c.turn_at > now - WINDOW)
    )
    return list(result.scalars())


async def take(conn: AsyncConnection, strategy: str, client_order_id: str,
               at: datetime) -> None:
    """Keep the slice's turn; turns long past are dropped on the way (nothing reads them)."""
    await conn.execute(delete(slice_turns).where(slice_turns.c.strategy_id == strategy)
                       .where(slice_turns.c.turn_at < at - 10 * WINDOW))
    await conn.execute(delete(slice_turns)
                       .where(slice_turns.c.client_order_id == client_order_id))
    await conn.execute(insert(slice_turns).values(
        strategy_id=strategy, client_order_id=client_order_id, turn_at=at))
