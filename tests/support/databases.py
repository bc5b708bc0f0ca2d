"""A fresh, migrated database per test: a SQLite file, or a PostgreSQL database cloned from a
template migrated once per run (CREATE DATABASE ... TEMPLATE is fast)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from worker.store.migrations import upgrade


def _asyncpg_dsn(url: str, database: str) -> str:
    u = make_url(url).set(drivername="postgresql", database=database)
    return u.render_as_string(hide_password=False)


class PgDatabases:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.run = uuid.uuid4().hex[:8]
        self.template = f"twap_tmpl_{self.run}"
        self.created: list[str] = []

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

    async def new(self, *, migrated: bool = True) -> str:
        name = f"twap_t_{self.run}_{uuid.uuid4().hex[:8]}"
        conn = await self._admin()
        try:
            if migrated:
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            else:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return self.url_for(name)

    async def drop_all(self) -> None:
        conn = await self._admin()
        try:
            for name in reversed(self.created):
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def sqlite_url(directory: Path, *, migrated: bool = True) -> str:
    url = f"sqlite+aiosqlite:///{directory / 'twap.db'}"
    if migrated:
        upgrade(url)
    return url
