"""PostgreSQL: a claim goes through only while this worker's leadership session holds its
lock, checked by the claim's own statement (Store.fence_claims)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from twap_schemas.common import SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.core.planning import build_plan
from worker.store.leadership import Leadership
from worker.store.repository import Store

pytestmark = pytest.mark.integration


async def test_a_claim_after_the_lock_session_ended_claims_nothing(pg_db: str) -> None:
    """The lock's session ended by the server (as `pg_terminate_backend` does) before the
    worker noticed: its claims, single or batched, write nothing and the slices stay
    scheduled for the next leader; while the session held the lock, claims went through."""
    store = Store.from_url(pg_db)
    leadership = Leadership(pg_db, f"fence-{uuid.uuid4().hex}")
    try:
        assert await leadership.acquire(asyncio.Event())
        store.fence_claims(lambda: leadership.session_pid)
        now = datetime.now(UTC)
        request = SubmitRequest(type="submit", strategy_id="fence", symbol="AAPL", side="buy",
                                qty=4, duration_seconds=4, interval_seconds=1,
                                request_id=uuid.uuid4().hex)
        parent, records = build_plan(request, now=now)
        await store.create_parent(parent, records, now)
        pid = parent.parent_order_id
        assert await store.claim(pid, 0, now) is not None
        assert len(await store.claim_many([(pid, 1)], now)) == 1

        session = leadership.session_pid
        assert session is not None
        # With a timeout the call returns once the session has exited, its lock released;
        # without one it only signals, and a claim right after could still find the lock held.
        async with store.transaction() as conn:
            ended = await conn.execute(text("SELECT pg_terminate_backend(:p, 10000)"),
                                       {"p": session})
            assert ended.scalar_one() is True
        assert await store.claim(pid, 2, now) is None
        assert await store.claim_many([(pid, 2), (pid, 3)], now) == {}
        statuses = [s.status for s in await store.get_slices(pid)]
        assert statuses == [SliceStatus.SUBMITTING] * 2 + [SliceStatus.SCHEDULED] * 2
    finally:
        await leadership.release()
        await store.close()


async def test_claims_stop_once_the_lock_session_is_gone(pg_db: str) -> None:
    """With the lock's connection dropped (the worker saw the loss), a fenced store claims
    nothing without asking the database."""
    store = Store.from_url(pg_db)
    leadership = Leadership(pg_db, f"fence-{uuid.uuid4().hex}")
    try:
        assert await leadership.acquire(asyncio.Event())
        store.fence_claims(lambda: leadership.session_pid)
        now = datetime.now(UTC)
        request = SubmitRequest(type="submit", strategy_id="fence", symbol="AAPL", side="buy",
                                qty=2, duration_seconds=2, interval_seconds=1,
                                request_id=uuid.uuid4().hex)
        parent, records = build_plan(request, now=now)
        await store.create_parent(parent, records, now)
        await leadership.release()
        assert leadership.session_pid is None
        assert await store.claim(parent.parent_order_id, 0, now) is None
        assert await store.claim_many([(parent.parent_order_id, 1)], now) == {}
    finally:
        await leadership.release()
        await store.close()
