"""Statements with an IN list reach the database as a few SQL texts, whatever the list's length.

Each text is a prepared statement of its own in SQLite's and asyncpg's per-connection caches;
lists of every length kept those caches churning for as long as the worker ran."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from tests.integration.test_store import make_plan
from worker.core import events
from worker.store import grants, limits, parents
from worker.store.inlists import IN_SIZES
from worker.store.repository import Store

pytestmark = pytest.mark.integration

LENGTHS = range(1, 71)


@contextmanager
def sql_texts(store: Store) -> Iterator[set[str]]:
    """The SQL texts the store's engine sends meanwhile."""
    seen: set[str] = set()

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.add(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)


async def test_outbox_removal_uses_a_few_texts_for_any_number_of_ids(store: Store) -> None:
    messages = [
        events.control_changed("breaker", n % 2 == 0, reason="r", operator=None,
                               automatic=False, at=datetime.now(UTC))
        for n in range(sum(LENGTHS))
    ]
    await store.write_messages(messages, datetime.now(UTC))
    ids = [row_id for row_id, _ in await store.outbox_fetch(len(messages))]
    assert len(ids) == len(messages)
    with sql_texts(store) as seen:
        start = 0
        for length in LENGTHS:
            await store.outbox_remove(ids[start : start + length])
            start += length
    assert await store.outbox_backlog() == 0
    assert 1 <= len(seen) <= len(IN_SIZES)


async def test_reads_by_a_list_of_ids_use_a_few_texts_each_and_find_the_same_rows(
    store: Store,
) -> None:
    now = datetime.now(UTC)
    parent, plan = make_plan(now)
    await store.create_parent(parent, plan, now)
    pid = parent.parent_order_id
    with sql_texts(store) as seen:
        for length in LENGTHS:
            ids = [pid, *(f"{n:024d}" for n in range(length - 1))]
            async with store.transaction() as conn:
                assert await parents.existing_ids(conn, ids) == {pid}
                assert await parents.strategies_of(conn, ids) == {pid: parent.strategy_id}
                names = [parent.strategy_id, *(f"s{n}" for n in range(length - 1))]
                assert await limits.rows(conn, names) == {}
                assert await grants.of_users(conn, names) == {}
    assert len(seen) <= 4 * len(IN_SIZES)
