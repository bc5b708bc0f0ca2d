"""Exactly one active worker per database.

PostgreSQL: a session advisory lock held on one dedicated connection (outside the pool) for the
life of the process; a standby polls for it and takes over as soon as the holder's session
ends. A holder that loses its session (the database went away) is not the leader any more
until `regain` takes the lock back on a new session. SQLite: an exclusive lock on a file beside
the database; a second worker refuses to start.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)


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
        self._fd: int | None = None
        self.held = False

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
                await self._drop_connection()
            try:
                await asyncio.wait_for(stopping.wait(), timeout=poll)
            except TimeoutError:
                pass
        return False

    async def still_held(self) -> bool:
        """False when the lock's session is gone: another worker may be active now."""
        if self.is_sqlite:
            return self._fd is not None
        if self._conn is None:
            self.held = False
            return False
        try:
            await self._conn.execute(text("SELECT 1"))
            return True
        except Exception:
            self.held = False
            return False

    async def regain(self) -> bool | None:
        """After the lock's session was lost: True when the lock is ours again (on a new
        session), False when another worker holds it, None while the database stays away."""
        await self._drop_connection()
        try:
            self.held = await self._try_advisory()
        except Exception as exc:
            log.warning("leadership.db_unavailable", extra={"error": repr(exc)[:200]})
            await self._drop_connection()
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
            engine = create_async_engine(self.url, poolclass=NullPool)
            self._engine = engine
            self._conn = await engine.connect()
        got = (
            await self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
        ).scalar_one()
        await self._conn.commit()
        return bool(got)

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close()
            except Exception:
                pass
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
