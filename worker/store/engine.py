"""Engines that behave: SQLite in WAL with a busy timeout and immediate write locks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from worker.store.prepared import PreparedSpread
from worker.store.sqlite_inline import INLINE_BUSY_TIMEOUT_MS, InlineConnection, inline_creator

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Each SQLite connection's page cache, KiB: fills within the first few thousand parents and
# stays there (measured: 2,049 KiB in use from the second soak round on). Set on every new
# connection so the bound is ours, not whatever default the SQLite build was compiled with.
SQLITE_PAGE_CACHE_KIB = 2048

# PostgreSQL probes a silent session of ours after PG_KEEPALIVE_IDLE seconds, then every
# PG_KEEPALIVE_INTERVAL, and drops it after PG_KEEPALIVE_COUNT unanswered probes: a worker that
# vanished behind a silent network loses its sessions (and their locks) after
# PG_SILENT_DROP_SECONDS, not after the system's two hours.
PG_KEEPALIVE_IDLE = 5
PG_KEEPALIVE_INTERVAL = 1
PG_KEEPALIVE_COUNT = 3
PG_SILENT_DROP_SECONDS = PG_KEEPALIVE_IDLE + PG_KEEPALIVE_INTERVAL * PG_KEEPALIVE_COUNT  # 8

# PostgreSQL connections kept open beyond `pool_size`, for the intake, the outbox relay and the
# order updates next to the slices in flight. Not overflow opened on demand: the pool closes an
# overflow connection as soon as it is returned, so under a steady load each busy moment opened
# new ones (a soak round of 3,000 parents closed 45-80 sockets), each connecting, introspecting
# types and preparing its statements again; a closed connection's transport is a reference
# cycle, kept for good when a full collection had frozen it while it was open.
PG_EXTRA_CONNECTIONS = 5


def pg_session_settings(
    *, user_timeout_ms: int | None = None, application_name: str | None = None
) -> dict[str, str]:
    """Server-side settings sent with the connection's start-up (no extra round trip).
    `user_timeout_ms` bounds how long the server waits for its sent data to be acknowledged
    (unset: the server's own setting, by default the system's ~15 minutes of retransmits)."""
    settings = {
        "tcp_keepalives_idle": str(PG_KEEPALIVE_IDLE),
        "tcp_keepalives_interval": str(PG_KEEPALIVE_INTERVAL),
        "tcp_keepalives_count": str(PG_KEEPALIVE_COUNT),
    }
    if user_timeout_ms is not None:
        settings["tcp_user_timeout"] = str(user_timeout_ms)
    if application_name is not None:
        settings["application_name"] = application_name
    return settings


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for `url`; SQLite gets WAL, busy_timeout and BEGIN IMMEDIATE.

    A plain SQLite file URL runs its statements on the event loop's thread (sqlite_inline);
    one with query options (uri=true, ...) goes through aiosqlite's thread as given.
    """
    if url.startswith("sqlite"):
        parsed = make_url(url)
        if parsed.query:
            engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)
            _tune_sqlite(engine, SQLITE_BUSY_TIMEOUT_MS)
            return engine
        engine = create_async_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=60,
            async_creator=inline_creator(parsed.database or ":memory:"),
        )
        _tune_sqlite(engine, INLINE_BUSY_TIMEOUT_MS)
        return engine
    # No pre-ping: on asyncpg it costs three round trips (BEGIN, a query, ROLLBACK) on every
    # checkout, more than the statement it protects. A connection that died with the server
    # fails its first statement as an outage, every caller retries, and SQLAlchemy then
    # replaces the whole pool.
    engine = create_async_engine(
        url,
        pool_size=pool_size + PG_EXTRA_CONNECTIONS,
        max_overflow=0,
        pool_timeout=10,
        connect_args={
            "timeout": 5, "command_timeout": 30, "server_settings": pg_session_settings(),
            # asyncpg expires each cached statement with a timer that is a reference cycle with
            # its entry, and the collector's freeze keeps such cycles for good: no lifetime (the
            # cache stays bounded by its size, and the schema does not change under a worker).
            "max_cached_statement_lifetime": 0,
        },
    )
    PreparedSpread().install(engine)  # prepared statements that settle early, not over days
    return engine


def _tune_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_PAGE_CACHE_KIB}")  # negative: KiB, not pages
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that later writes can fail with
        # SQLITE_BUSY without waiting, whatever busy_timeout says.
        driver = connection.connection.driver_connection
        if isinstance(driver, InlineConnection):
            driver.begin_immediate()  # straight to sqlite3: no statement machinery per BEGIN
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
# whole, so running it again is safe and usually succeeds.
CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})


def is_conflict(exc: BaseException) -> bool:
    """True when the database rolled the transaction back for a conflict with another one
    (deadlock, serialization failure): worth running again at once. Read from the SQLSTATE,
    not the exception class: how a driver's error is classed varies between versions."""
    seen: BaseException | None = exc
    for _ in range(4):  # the SQLAlchemy error, the adapted DBAPI error, the driver's own
        if seen is None:
            return False
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if code in CONFLICT_SQLSTATES:
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


def is_outage(exc: BaseException) -> bool:
    """True when the database could not be reached or dropped us: worth retrying later."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, PoolTimeout):  # no connection free in time: nothing ran, retry is safe
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError | ConnectionError | TimeoutError)
