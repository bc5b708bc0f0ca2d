"""A fresh, migrated database per test: a SQLite file copied from one migrated once per run,
or a PostgreSQL database cloned from a template migrated once per run (CREATE DATABASE ...
TEMPLATE is fast)."""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from worker.store.migrations import upgrade


def _asyncpg_dsn(url: str, database: str) -> str:
    u = make_url(url).set(drivername="postgresql", database=database)
    return u.render_as_string(hide_password=False)


class PgDatabases:
    """The template, and fresh clones of it. The clone the next test will get is made on a
    thread of its own while the current test runs (CREATE DATABASE takes 0.1-0.3 s here, most
    of it waiting on the server's disk), so a test gets its database without that wait."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run = uuid.uuid4().hex[:8]
        self.template = f"twap_tmpl_{self.run}"
        self.created: list[str] = []
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-clones")
        self._next: Future[str] | None = None

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(
            hide_password=False
        )

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(_asyncpg_dsn(self.admin_url, make_url(self.admin_url).database
                                                  or "postgres"))

    async def prepare_template(self) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await conn.close()
        self.created.append(self.template)
        await asyncio.to_thread(upgrade, self.url_for(self.template))

    async def _create(self, name: str, template: str | None) -> str:
        conn = await self._admin()
        try:
            if template is not None:
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            else:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return name

    def _clone_later(self) -> Future[str]:
        """Start making a clone of the template on the maker's thread; nobody has used it."""
        name = f"twap_t_{self.run}_{uuid.uuid4().hex[:8]}"
        self.created.append(name)  # dropped at the end even if no test took it
        return self._maker.submit(asyncio.run, self._create(name, self.template))

    async def new(self, *, migrated: bool = True) -> str:
        if not migrated:
            name = f"twap_t_{self.run}_{uuid.uuid4().hex[:8]}"
            self.created.append(name)
            return self.url_for(await self._create(name, None))
        ready = self._next if self._next is not None else self._clone_later()
        self._next = self._clone_later()
        return self.url_for(await asyncio.wrap_future(ready))

    async def drop_all(self) -> None:
        """Drop every clone, then the template. Eight sessions drop side by side: each DROP
        waits mostly on the server's checkpoint, which drops made together share (16 clones:
        3-7 s one after the other, under 1 s four at a time, on a loaded 2-core machine)."""
        await asyncio.to_thread(self._maker.shutdown, True)  # the clone being made, if any
        clones = [n for n in self.created if n != self.template]

        async def drop(names: list[str]) -> None:
            conn = await self._admin()
            try:
                for name in names:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        await asyncio.gather(*(drop(clones[k::8]) for k in range(8)))
        if self.template in self.created:
            await drop([self.template])


_sqlite_template: Path | None = None


def sqlite_template() -> Path:
    """A SQLite file Alembic migrated to head, once per test process. A test copies it: a copy
    takes about a millisecond, a migration of its own tens of them."""
    global _sqlite_template
    if _sqlite_template is None:
        folder = Path(tempfile.mkdtemp(prefix="twap-sqlite-template-"))
        atexit.register(shutil.rmtree, folder, True)
        upgrade(f"sqlite+aiosqlite:///{folder / 'twap.db'}")
        # Alembic's engine is closed: the WAL is checkpointed into the file, nothing beside it.
        assert [p.name for p in folder.iterdir()] == ["twap.db"]
        _sqlite_template = folder / "twap.db"
    return _sqlite_template


def sqlite_url(directory: Path, *, migrated: bool = True) -> str:
    path = directory / "twap.db"
    if migrated:
        shutil.copyfile(sqlite_template(), path)
    return f"sqlite+aiosqlite:///{path}"
