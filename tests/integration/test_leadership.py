"""The leadership lock's connection against the real PostgreSQL (and its SQLite file lock):
bounded checks, a lease, and the session settings that let PostgreSQL drop a silent holder."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.observability.pausable_proxy import PausableProxy
from worker.store import leadership as leadership_module
from worker.store.engine import PG_KEEPALIVE_COUNT, PG_KEEPALIVE_IDLE, PG_KEEPALIVE_INTERVAL
from worker.store.leadership import CHECK_TIMEOUT, LEASE, SERVER_DROP_SECONDS, Leadership
from worker.store.repository import Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def proxy(pg_db: str) -> AsyncIterator[PausableProxy]:
    url = make_url(pg_db)
    made = PausableProxy(url.host or "127.0.0.1", url.port or 5432)
    await made.start()
    yield made
    made.resume()
    await made.close()


def through(proxy: PausableProxy, database_url: str) -> str:
    url = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    return url.render_as_string(hide_password=False)


async def test_unanswered_check_is_lost_leadership_within_its_bound(
    pg_db: str, proxy: PausableProxy
) -> None:
    """Lock connection silent: the check gives up after CHECK_TIMEOUT, leading() is False at
    once, and the lock comes back only on a fresh session once the network answers."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    lock = Leadership(through(proxy, pg_db), namespace)
    try:
        assert await lock.acquire(asyncio.Event())
        assert await lock.still_held() and lock.leading()
        proxy.pause()
        started = time.monotonic()
        held = await asyncio.wait_for(lock.still_held(), CHECK_TIMEOUT + 10)
        waited = time.monotonic() - started
        assert not held and not lock.leading(), "a silent check still counted as leadership"
        assert waited < CHECK_TIMEOUT + 1, f"the check gave up after {waited:.2f} s"
        assert await lock.regain() is None, "regained while the network was silent"
        assert not lock.leading()
        proxy.resume()
        assert await lock.regain() is True, "the lock did not come back on a fresh session"
        assert lock.leading()
        print(f"silent lock check gave up after {waited:.2f} s (bound {CHECK_TIMEOUT} s)")
    finally:
        await lock.release()


async def test_lease_ends_claims_when_no_check_renews_it(
    pg_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an answered check for LEASE seconds, leading() is False though `held` is set."""
    lock = Leadership(pg_db, f"t{uuid.uuid4().hex[:10]}")
    try:
        assert await lock.acquire(asyncio.Event()) and lock.leading()
        later = time.monotonic() + LEASE + 0.01
        monkeypatch.setattr(leadership_module, "monotonic", lambda: later)
        assert lock.held and not lock.leading()
    finally:
        await lock.release()


async def test_postgresql_drops_a_silent_lock_session_and_pool_sessions(pg_db: str) -> None:
    """The lock's session carries keepalives and a TCP user timeout; pool sessions keepalives."""
    lock = Leadership(pg_db, f"t{uuid.uuid4().hex[:10]}")
    store = Store.from_url(pg_db)
    names = ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
             "tcp_user_timeout", "application_name")
    try:
        assert await lock.acquire(asyncio.Event())
        assert lock._conn is not None  # the lock's own session, the one PostgreSQL must drop
        on_lock = [(await lock._conn.execute(text(f"SHOW {n}"))).scalar_one() for n in names]
        async with store.engine.connect() as conn:
            on_pool = [(await conn.execute(text(f"SHOW {n}"))).scalar_one() for n in names[:3]]
    finally:
        await lock.release()
        await store.close()
    assert on_lock == [
        str(PG_KEEPALIVE_IDLE), str(PG_KEEPALIVE_INTERVAL), str(PG_KEEPALIVE_COUNT),
        f"{SERVER_DROP_SECONDS * 1000:.0f}", "twap-worker leadership",
    ], on_lock
    assert on_pool == on_lock[:3], on_pool
    assert SERVER_DROP_SECONDS > LEASE > CHECK_TIMEOUT


async def test_sqlite_leadership_is_a_file_lock_with_nothing_to_lose(tmp_path: Path) -> None:
    """SQLite: the lock is a file lock held by the process; checks never touch the network."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'twap.db'}"
    lock = Leadership(url, "any")
    try:
        assert await lock.acquire(asyncio.Event())
        assert await lock.still_held() and lock.leading()
        assert (tmp_path / "twap.db.lock").exists()
    finally:
        await lock.release()
    assert not lock.leading()
