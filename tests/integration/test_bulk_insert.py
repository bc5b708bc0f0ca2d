"""Bulk inserts (COPY on PostgreSQL, executemany on SQLite) store what SQLAlchemy would."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from twap_schemas.common import SliceStatus
from twap_schemas.requests import SubmitRequest
from worker.core.planning import build_plan
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.store import bulk
from worker.store import outbox as outbox_rows
from worker.store import parents as parent_rows
from worker.store.repository import Store
from worker.store.rows import outbox_values
from worker.store.tables import outbox, slices

pytestmark = pytest.mark.integration

ROWS = bulk.BULK_MIN_ROWS + 4


def _plans(count: int) -> list[tuple[ParentRecord, list[SliceRecord]]]:
    # A whole second (microsecond 0) is stored in its own text form on SQLite: it must read back.
    start = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    plans = []
    for number in range(count):
        priced = number % 2 == 0
        request = SubmitRequest(
            type="submit",
            strategy_id="bulk",
            symbol="BRK.B",
            side="buy",
            qty=ROWS * 10,
            duration_seconds=ROWS,
            interval_seconds=1,
            start_at=start,
            order_type="limit" if priced else "market",
            limit_price=Decimal("101.50") if priced else None,
            request_id=uuid.uuid4().hex,
        )
        plans.append(build_plan(request, now=datetime.now(UTC)))
    return plans


async def test_parents_and_slices_read_back_unchanged(store: Store) -> None:
    """Parents (decimal prices, NULLs) and their slices (times to the microsecond) round-trip."""
    plans = _plans(ROWS)
    async with store.transaction() as conn:
        await parent_rows.insert_many(conn, plans, datetime.now(UTC))
    for parent, records in plans[:3]:
        assert await store.get_parent(parent.parent_order_id) == parent
        assert await store.get_slices(parent.parent_order_id) == records
    found = await store.pending_parents()
    assert {p.parent_order_id for p in found} == {p.parent_order_id for p, _ in plans}
    start = plans[0][1][0].scheduled_time
    async with store.engine.connect() as conn:  # compared in SQL: stored in the same form
        at_start = (
            await conn.execute(select(func.count()).where(slices.c.scheduled_time == start))
        ).scalar_one()
    assert at_start == ROWS


async def test_outbox_rows_keep_their_order_and_fields(store: Store) -> None:
    """Many outbox messages come back in insertion order, headers and bodies intact."""
    messages = [
        OutboxMessage(
            exchange="dlx" if n % 3 == 0 else "events",
            routing_key=f"k.{n}",
            body=f'{{"n": {n}}}'.encode(),
            message_id=str(n),
            type="t",
            headers={"x-twap-reason": "schema"} if n % 3 == 0 else {},
        )
        for n in range(ROWS)
    ]
    async with store.transaction() as conn:
        await outbox_rows.write(conn, messages, datetime.now(UTC))
    assert [m for _, m in await store.outbox_fetch(1000)] == messages


async def test_a_rolled_back_transaction_leaves_no_bulk_rows(store: Store) -> None:
    """The bulk rows belong to the caller's transaction: an error after them removes them."""
    rows = [
        outbox_values(
            OutboxMessage(exchange="events", routing_key="k", body=b"{}"), datetime.now(UTC)
        )
        for _ in range(ROWS)
    ]
    with pytest.raises(RuntimeError):
        async with store.transaction() as conn:
            await bulk.insert_rows(conn, outbox, rows)
            raise RuntimeError("after the insert")
    assert await store.outbox_fetch(1000) == []


async def test_slices_with_more_than_a_plan_keep_every_column(store: Store) -> None:
    """Planned slices leave broker id, reason and send time out of the COPY; a slice that has
    them (as a restore or a test may insert) takes the full column set."""
    plans = _plans(1)
    parent, records = plans[0]
    sent = datetime(2030, 1, 2, 3, 4, 6, 250, tzinfo=UTC)
    records[1] = replace(records[1], status=SliceStatus.SUBMITTED, broker_order_id="b-1",
                         attempts=2, sent_at=sent)
    records[2] = replace(records[2], status=SliceStatus.FAILED, reason="broker down",
                         attempts=3)
    async with store.transaction() as conn:
        await parent_rows.insert_many(conn, [(parent, records)], datetime.now(UTC))
    assert await store.get_slices(parent.parent_order_id) == records
