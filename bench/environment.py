"""Where a benchmark runs: the services named in the environment, a fresh database per run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from worker.settings import Settings, mask_url


@dataclass(frozen=True, slots=True)
class Services:
    amqp_url: str
    database_url: str | None  # None or a SQLite URL: a fresh SQLite file per run


@dataclass(frozen=True, slots=True)
class Database:
    kind: str  # sqlite | postgresql
    url: str

    @property
    def masked(self) -> str:
        return mask_url(self.url)


def services_from_environment() -> Services:
    """TWAP_AMQP_URL and TWAP_DATABASE_URL, read the way the worker reads them."""
    settings = Settings()
    database = None
    if "database_url" in settings.model_fields_set:
        database = settings.database_url.get_secret_value()
    return Services(settings.amqp_url.get_secret_value(), database)


def _asyncpg_dsn(url: str, database: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


def asyncpg_dsn(url: str) -> str:
    """The asyncpg form of a SQLAlchemy PostgreSQL URL (the same database)."""
    return _asyncpg_dsn(url, make_url(url).database or "postgres")


@asynccontextmanager
async def fresh_database(services: Services, workdir: Path) -> AsyncIterator[Database]:
    """A new empty database for one run: a SQLite file in `workdir`, or CREATE DATABASE on the
    PostgreSQL server of TWAP_DATABASE_URL (dropped afterwards)."""
    url = services.database_url
    if url is None or url.startswith("sqlite"):
        yield Database("sqlite", f"sqlite+aiosqlite:///{workdir / 'twap.db'}")
        return
    admin_db = make_url(url).database or "postgres"
    name = f"twap_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_asyncpg_dsn(url, admin_db))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield Database(
            "postgresql", make_url(url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        conn = await asyncpg.connect(_asyncpg_dsn(url, admin_db))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
