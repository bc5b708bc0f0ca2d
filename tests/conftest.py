"""Shared fixtures: the real services, a fresh database per test, a worker harness."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support import services
from tests.support.databases import PgDatabases, sqlite_url
from tests.support.harness import Harness, worker_settings


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return services.amqp_url()


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return services.pg_admin_url()


def run_in_thread(coro: Coroutine[Any, Any, None]) -> None:
    """asyncio.run on a thread of its own: a session fixture may be set up inside a test's loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="session")
def pg_databases(pg_admin_url: str) -> Iterator[PgDatabases]:
    databases = PgDatabases(pg_admin_url)
    run_in_thread(databases.prepare_template())
    yield databases
    run_in_thread(databases.drop_all())


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
async def pg_db(pg_databases: PgDatabases) -> str:
    return await pg_databases.new()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(db_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh migrated database of each kind (the test runs once per kind)."""
    if db_kind == "sqlite":
        return sqlite_url(tmp_path)
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    return await databases.new()


@pytest.fixture
def namespace() -> Iterator[str]:
    yield f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def harness(amqp_url: str, database_url: str, namespace: str) -> AsyncIterator[Harness]:
    h = Harness(worker_settings(amqp_url, database_url, namespace))
    await h.open()
    yield h
    await h.close()


@pytest.fixture
def http_port() -> int:
    """A port nothing listens on right now (the OS picks it; the worker binds it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
