"""Every pooled PostgreSQL connection comes to hold the same prepared statements, early.

SQLAlchemy's asyncpg adapter prepares a statement on a connection the first time that
connection runs its text, and keeps it. With about 70 texts and 15 connections, a worker went
on preparing new connection-text pairs for hours, as rarely chosen connections met busy texts
for the first time: a slow climb in memory that a soak reads as a leak (745 pairs after 30 s,
844 after 9,000 parents, still rising). The set it tends to is bounded; this reaches it early
in a run instead of over days.

How: when a connection goes back to the pool, the texts it has prepared join a shared list;
when one is taken out, it prepares at most PER_CHECKOUT texts of the list it lacks (a Parse and
Describe each, nothing executed), so no checkout pays for more than a couple of round trips.
Preparing the whole list on a connection's first checkout made the first burst of slices late
(dispatch p99 0.3-0.6 s instead of 0.04 s).

Failures change nothing the caller would see without this: a session found dead is left for
the caller's statement to meet (an outage, retried, as with no pre-ping); a text the server
refuses on this session (a temporary table of another) is dropped from the list; anything
else (a timeout) ends this checkout's preparing, and the text is tried again later. A checkout
cancelled while preparing loses its connection: the pool closes it, as it does a connection
cancelled while connecting.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

log = logging.getLogger(__name__)

# Round trips a checkout may spend on texts its connection lacks.
PER_CHECKOUT = 2
# The list stops growing at this share of the adapter's cache capacity (100): what every
# connection is given stays well clear of the size at which the cache starts dropping texts.
SHARE_OF_CACHE = 0.8
# SQLSTATE classes about the session, not the statement: connection exception, operator
# intervention (a terminated backend, a shutdown).
_SESSION_CLASSES = ("08", "57")
# record.info keys: the cache size last read at check-in, and how much of the list is done.
_READ_AT = "twap.prepared_read_at"
_DONE = "twap.prepared_done"


class PreparedSpread:
    """The shared list and the two pool listeners. Each engine gets its own (`install`)."""

    def __init__(self) -> None:
        self.texts: dict[str, None] = {}  # insertion order: the first texts met go first
        self.failed: set[str] = set()
        self._full_logged = False

    def install(self, engine: AsyncEngine) -> PreparedSpread:
        event.listen(engine.sync_engine.pool, "checkin", self.on_checkin)
        event.listen(engine.sync_engine.pool, "checkout", self.on_checkout)
        return self

    def on_checkin(self, adapter: Any, record: Any) -> None:
        cache = _cache_of(adapter)
        if cache is None or len(cache) == record.info.get(_READ_AT):
            return  # nothing new prepared since the last look (the common case: no copy)
        record.info[_READ_AT] = len(cache)
        limit = int(cache.capacity * SHARE_OF_CACHE)
        for text in cache:  # iterating keys leaves the cache's recency as it was
            if text in self.texts or text in self.failed:
                continue
            if len(self.texts) >= limit:
                if not self._full_logged:
                    self._full_logged = True
                    log.warning("store.prepared_list_full", extra={"texts": len(self.texts)})
                return
            self.texts[text] = None

    def on_checkout(self, adapter: Any, record: Any, _proxy: Any) -> None:
        listed = len(self.texts)  # before any await: texts that join meanwhile come next time
        if record.info.get(_DONE) == listed:
            return
        cache = _cache_of(adapter)
        if cache is None:
            return
        held = set(cache)
        lacking = [t for t in islice(self.texts, listed) if t not in held and t not in self.failed]
        for text in lacking[:PER_CHECKOUT]:
            if not self._prepare(adapter, text):
                return
        if len(lacking) <= PER_CHECKOUT:
            record.info[_DONE] = listed

    def _prepare(self, adapter: Any, text: str) -> bool:
        """Prepare `text` on this session; False when this checkout should prepare no more."""
        try:
            # Runs inside the pool's checkout, itself inside SQLAlchemy's greenlet: await_only
            # is how a sync listener waits on the driver. Timestamp 0: never reload types here.
            await_only(adapter._prepare(text, 0))
        except MissingGreenlet:
            raise  # a caller outside the async engine: a bug to see, not a text to drop
        except Exception as exc:
            if adapter._connection.is_closed():
                return False
            state = getattr(exc, "sqlstate", None)
            if isinstance(state, str) and not state.startswith(_SESSION_CLASSES):
                self.failed.add(text)
                log.warning("store.prepare_failed",
                            extra={"error": repr(exc), "sql": text[:200]})
                return True
            log.info("store.prepare_deferred", extra={"error": repr(exc)})
            return False
        return True


def _cache_of(adapter: Any) -> Any:
    """The adapter's cache of prepared statements (text -> statement), or None."""
    return getattr(adapter, "_prepared_statement_cache", None) if adapter is not None else None
