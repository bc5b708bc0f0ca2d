"""Exactly one active worker per database.

PostgreSQL: a session advisory lock held on one dedicated connection (outside the pool) for the
life of the process; a standby polls for it and takes over as soon as the holder's session
ends. A holder that loses its session (the database went away), or whose check of it is not
answered within CHECK_TIMEOUT, is not the leader any more until `regain` takes the lock back on
a new session. SQLite: an exclusive lock on a file beside the database; a second worker refuses
to start.

Timing (docs/decisions.md): the holder checks its session every CHECK_EVERY seconds and may
claim only while its lease runs, LEASE seconds from the sending of the last check that was
answered. PostgreSQL drops a session whose client went silent only after
SERVER_DROP_SECONDS (keepalives and TCP user timeout set on that session), and only then can a
standby take the lock: by then the old holder has stopped claiming on its own.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
from contextlib import suppress
from pathlib import Path
from time import monotonic
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from worker.store.engine import PG_SILENT_DROP_SECONDS, pg_session_settings

log = logging.getLogger(__name__)

CHECK_EVERY = 1.0  # seconds between two checks of the lock's session
CHECK_TIMEOUT = 2.0  # a check (or a try for the lock) unanswered for this long: leadership lost
CONNECT_TIMEOUT = 5.0  # opening the lock's connection
LEASE = 5.0  # claims stop this long after the last answered check was sent
SERVER_DROP_SECONDS = PG_SILENT_DROP_SECONDS  # 8 s: keepalives, and the same TCP user timeout
APPLICATION_NAME = "twap-worker leadership"


class AlreadyRunning(RuntimeError):
    """Another worker holds this database (SQLite only; PostgreSQL waits instead)."""


def lock_key(namespace: str) -> int:
    digest = hashlib.sha256(f"twap-worker:{namespace}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leadership:
    def __init__(self, database_url: str, namespace: str) -> None:
        self.url = database_url
        self.key = lock_key(namespace)
        self._conn: AsyncConnection | None = None
        self._engine: AsyncEngine | None = None
        self._driver: Any = None  # the asyncpg connection under _conn, to abort it at once
        self._fd: int | None = None
        self._lease_until = 0.0
        self.held = False
        # PostgreSQL: the server process of the session holding the lock; claims are fenced
        # on it (Store.fence): once that session ends, no claim of this worker goes through.
        self.session_pid: int | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    async def acquire(self, stopping: asyncio.Event, poll: float = 1.0) -> bool:
        """Become the active worker; False if `stopping` was set while standing by."""
        if self.is_sqlite:
            self._lock_file()
            self.held = True
            return True
        announced = False
        while not stopping.is_set():
            try:
                if await self._try_advisory():
                    self.held = True
                    return True
                if not announced:
                    log.warning("leadership.standby", extra={"key": self.key})
                    announced = True
            except Exception as exc:
                log.warning("leadership.db_unavailable", extra={"error": repr(exc)[:200]})
                await self._drop_connection(graceful=False)
            try:
                await asyncio.wait_for(stopping.wait(), timeout=poll)
            except TimeoutError:
                pass
        return False

    def leading(self) -> bool:
        """May this worker claim and accept now? Held, and (PostgreSQL) inside the lease, so a
        stalled check loop cannot stretch a leadership the database may already have ended."""
        if self.is_sqlite:
            return self.held
        return self.held and monotonic() < self._lease_until

    async def still_held(self) -> bool:
        """False when the lock's session is gone or did not answer within CHECK_TIMEOUT:
        another worker may be active soon. Leadership is dropped before this returns."""
        if self.is_sqlite:
            return self.held  # a file lock lives as long as the process; nothing to lose
        if self._conn is None:
            self.held = False
            return False
        sent = monotonic()
        try:
            await self._bounded(text("SELECT 1"))
        except Exception as exc:  # TimeoutError included: silence counts as loss
            self.held = False
            log.error("leadership.check_failed", extra={
                "error": repr(exc)[:200], "timeout_seconds": CHECK_TIMEOUT})
            await self._drop_connection(graceful=False)
            return False
        self._lease_until = sent + LEASE
        return True

    async def regain(self) -> bool | None:
        """After the lock's session was lost: True when the lock is ours again (on a new
        session), False when another worker holds it, None while the database stays away."""
        self.held = False
        await self._drop_connection(graceful=False)
        try:
            self.held = await self._try_advisory()
        except Exception as exc:
            log.warning("leadership.db_unavailable", extra={"error": repr(exc)[:200]})
            await self._drop_connection(graceful=False)
            return None
        return self.held

    async def release(self) -> None:
        self.held = False
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        await self._drop_connection()

    async def _try_advisory(self) -> bool:
        if self._conn is None:
            engine = create_async_engine(
                self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                connect_args={
                    "timeout": CONNECT_TIMEOUT,
                    "command_timeout": CHECK_TIMEOUT,
                    "server_settings": pg_session_settings(
                        user_timeout_ms=int(SERVER_DROP_SECONDS * 1000),
                        application_name=APPLICATION_NAME,
                    ),
                },
            )
            self._engine = engine
            self._conn = await asyncio.wait_for(engine.connect(), CONNECT_TIMEOUT + CHECK_TIMEOUT)
            self._driver = (await self._conn.get_raw_connection()).driver_connection
        sent = monotonic()
        result = await self._bounded(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
        got = bool(result.scalar_one())
        if got:
            self._lease_until = sent + LEASE
            self.session_pid = int(self._driver.get_server_pid())
        return got

    async def _bounded(self, statement: Any, params: dict[str, Any] | None = None) -> Any:
        """Run `statement` on the lock's connection, or raise TimeoutError after CHECK_TIMEOUT
        with the connection aborted. Not wait_for: cancelling the statement would first wait
        for a goodbye that a silent network never answers."""
        assert self._conn is not None
        task = asyncio.ensure_future(self._conn.execute(statement, params))
        try:
            done, _ = await asyncio.wait({task}, timeout=CHECK_TIMEOUT)
        except BaseException:  # cancelled (the worker stops): the statement goes too
            task.cancel()
            raise
        if not done:
            self.held = False
            if self._driver is not None:
                self._driver.terminate()  # the statement fails at once
            await asyncio.wait({task}, timeout=CHECK_TIMEOUT)
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: it is the expected connection error
            raise TimeoutError(f"no answer from the lock's session within {CHECK_TIMEOUT:g} s")
        return task.result()

    async def _drop_connection(self, *, graceful: bool = True) -> None:
        """Close the lock's connection. Not graceful (after a loss): abort the socket without
        a goodbye, which a silent network would never deliver."""
        driver, self._driver = self._driver, None
        self.session_pid = None
        if driver is not None and not graceful:
            with suppress(Exception):
                driver.terminate()
        if self._conn is not None:
            with suppress(Exception):
                await asyncio.wait_for(self._conn.close(), CHECK_TIMEOUT)
            if driver is not None:
                with suppress(Exception):
                    driver.terminate()  # a close that did not finish in time
            self._conn = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def _lock_file(self) -> None:
        database = make_url(self.url).database or ""
        path = Path(database + ".lock") if database and database != ":memory:" else None
        if path is None:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(
                f"another twap worker is already running on {database} "
                f"(lock {path}); SQLite allows one worker, use PostgreSQL for a hot standby"
            ) from None
        self._fd = fd
