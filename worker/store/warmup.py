"""The statements whose SQL text depends on a batch's size, compiled at start-up and prepared
on every pooled connection before its first use.

A claim of 1 to 128 slices and an IN list of 1 to 256 values are a few fixed texts each
(slices.CLAIM_SIZES, inlists.IN_SIZES). Each claim size is a statement SQLAlchemy compiles the
first time a batch of that size occurs (a claim of 64 slices: a 4 KiB statement, about 140 KiB
of objects), on the dispatch path and at moments spread over weeks, each a step up in the
process's memory; each text is one the driver prepares on a connection the first time that
connection sends it (asyncpg: about 12 KiB per statement and connection).

`warm_up` runs them once at start-up, with values that match no row, in a transaction that is
rolled back: compiled into the engine's cache (which every connection shares) and prepared on
that one connection, before the first request. It records what it sent to the driver, and
`Replay` sends the same again on every other connection of the pool the first time the pool
hands it out. Before, the other 14 connections of a PostgreSQL pool each prepared a text the
first time a batch of its size met that connection: their memory filled for as long as some
pair was still new, tens of thousands of parents into a run (docs/performance.md). Now a
connection's statements are complete from its first use; it costs the caller that opens the
connection one round trip per text, once (about 45 ms for 38 texts on PostgreSQL), and
preparing the whole pool at start-up, which took 0.66 s before the first slice, is not needed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine

from worker.store import inlists
from worker.store import slices as slice_rows

log = logging.getLogger(__name__)

# Set in a pooled connection's `info` (kept for the life of its driver connection) once the
# statements were sent on it.
WARMED = "twap.warmed"


def statements(fenced: bool, now: datetime) -> list[tuple[Any, dict[str, Any]]]:
    """Every claim size and every IN-list length of every registered statement (the modules
    that build them register them when imported; the repository imports them all)."""
    return [*slice_rows.claim_warm_ups(fenced, now), *inlists.warm_ups()]


class Replay:
    """What the warm-up sent to the driver, sent again on each pooled connection the first
    time the pool hands it out (the pool's checkout event: inside the caller's checkout, so
    the connection is the caller's only once it is prepared)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def install(self, engine: AsyncEngine) -> None:
        if not event.contains(engine.sync_engine, "checkout", self._on_checkout):
            event.listen(engine.sync_engine, "checkout", self._on_checkout)

    def remove(self, engine: AsyncEngine) -> None:
        if event.contains(engine.sync_engine, "checkout", self._on_checkout):
            event.remove(engine.sync_engine, "checkout", self._on_checkout)

    def record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any,
               _context: Any, _executemany: bool) -> None:
        self.sent.append((statement, parameters))

    def _on_checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get(WARMED) or not self.sent:
            return
        record.info[WARMED] = True  # once, whatever happens: on failure it prepares on use
        cursor = dbapi_connection.cursor()
        try:
            for statement, parameters in self.sent:
                cursor.execute(statement, parameters)
        except Exception as exc:
            log.warning("store.connection_warm_up_failed", extra={"error": repr(exc)[:200]})
        finally:
            cursor.close()
            try:
                dbapi_connection.rollback()  # nothing matched; nothing is kept either way
            except Exception as exc:
                # The connection is unusable: the pool drops it and opens another.
                raise DisconnectionError(f"connection lost while warming up: {exc!r}") from exc


async def warm_up(engine: AsyncEngine, replay: Replay, *, fenced: bool, now: datetime) -> int:
    """Run `statements` on one connection, rolled back, recording what reached the driver
    into `replay` (then installed on `engine`). Returns how many ran."""
    work = statements(fenced, now)
    replay.sent.clear()
    async with engine.connect() as conn:
        (await conn.get_raw_connection()).info[WARMED] = True
        event.listen(conn.sync_connection, "before_cursor_execute", replay.record)
        transaction = await conn.begin()
        try:
            for statement, params in work:
                await conn.execute(statement, params)
        finally:
            await transaction.rollback()
            event.remove(conn.sync_connection, "before_cursor_execute", replay.record)
    replay.install(engine)
    return len(work)
