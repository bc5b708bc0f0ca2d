"""Retrying a database call through an outage, for as long as the caller can wait."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from worker.runtime.clock import Clock
from worker.store.engine import is_conflict, is_outage

log = logging.getLogger(__name__)
T = TypeVar("T")
# A transaction rolled back for a conflict with another is run again this many times at most
# (waits growing from CONFLICT_WAIT seconds, so the two do not meet again at once).
CONFLICT_RETRIES = 5
CONFLICT_WAIT = 0.02


class DatabaseUnavailable(Exception):
    """The database stayed away past the caller's deadline."""


class NotLeading(ConnectionError):
    """This worker lost its leadership session and has not taken it back yet: it must not
    claim or accept anything meanwhile. Retried like an outage (it usually is one)."""


async def with_db_retry(
    call: Callable[[], Awaitable[T]],
    *,
    clock: Clock,
    deadline: datetime | None,
    what: str,
    first_wait: float = 0.2,
    max_wait: float = 2.0,
    ids: dict[str, object] | None = None,
) -> T:
    """Run `call`; on an outage retry with backoff until `deadline` (None: forever). A
    transaction the database rolled back for a conflict (deadlock, serialization failure)
    is run again after a short wait, whatever the deadline (it is not an outage), up to
    CONFLICT_RETRIES times in a row."""
    wait = first_wait
    conflicts = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            if is_conflict(exc) and conflicts < CONFLICT_RETRIES:
                conflicts += 1  # a deadlock or serialization failure, not an outage
                log.info("db.conflict_retry", extra={"what": what, "error": str(exc)[:200],
                                                     "attempt": conflicts, **(ids or {})})
                await asyncio.sleep(CONFLICT_WAIT * conflicts)
                continue
            if not is_outage(exc):
                raise
            if deadline is not None and clock() >= deadline:
                raise DatabaseUnavailable(f"{what}: database unavailable: {exc}") from exc
            log.warning("db.retry", extra={"what": what, "error": str(exc)[:200], **(ids or {})})
            await asyncio.sleep(wait)
            wait = min(wait * 2, max_wait)
