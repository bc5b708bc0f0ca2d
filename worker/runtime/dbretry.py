"""Retrying a database call through an outage, for as long as the caller can wait."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from worker.runtime.clock import Clock
from worker.store.engine import is_outage

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    """Run `call`; on an outage retry with backoff until `deadline` (None: forever)."""
    wait = first_wait
    while True:
        try:
            return await call()
        except Exception as exc:
            if not is_outage(exc):
                raise
            if deadline is not None and clock() >= deadline:
                raise DatabaseUnavailable(f"{what}: database unavailable: {exc}") from exc
            log.warning("db.retry", extra={"what": what, "error": str(exc)[:200], **(ids or {})})
            await asyncio.sleep(wait)
            wait = min(wait * 2, max_wait)
