"""Statements run for every batch leave no SQLAlchemy expression in a reference cycle.

The worker freezes what survives each full garbage collection (`gc.freeze`); a cycle that is
alive at that moment and dies later is never reclaimed. A statement built per call with
`.in_(list)` is such a cycle (the bound parameter memoizes a set holding itself) and holds its
whole list of ids: freezing one now and then leaked memory for as long as the worker ran.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy.sql import ClauseElement

from tests.integration.test_store import make_plan
from worker.core import events
from worker.store import limits, parents
from worker.store.repository import Store

pytestmark = pytest.mark.integration


@contextmanager
def unreachable_expressions() -> Iterator[list[str]]:
    """Collects, on exit, the type names of SQLAlchemy expressions that died in a cycle."""
    found: list[str] = []
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(type(o).__name__ for o in gc.garbage if isinstance(o, ClauseElement))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_outbox_remove_leaves_no_cyclic_statement(store: Store) -> None:
    """Deleting relayed outbox rows by id creates no expression garbage in a cycle."""
    switches = [n % 2 == 0 for n in range(4)]
    messages = [
        events.control_changed("breaker", on, reason="r", operator=None, automatic=False,
                               at=datetime.now(UTC))
        for on in switches
    ]
    await store.write_messages(messages, datetime.now(UTC))
    ids = [row_id for row_id, _ in await store.outbox_fetch(100)]
    assert len(ids) == 4
    await store.outbox_remove(ids[:1])  # the first execution compiles and caches
    with unreachable_expressions() as found:
        for row_id in ids[1:]:
            await store.outbox_remove([row_id])
    assert found == []
    assert await store.outbox_backlog() == 0


async def test_duplicate_check_of_a_batch_leaves_no_cyclic_statement(store: Store) -> None:
    """The intake's check for parent ids already stored creates no expression garbage in a cycle."""
    now = datetime.now(UTC)
    parent, plan = make_plan(now)
    await store.create_parent(parent, plan, now)
    ids = [parent.parent_order_id, "0" * 24]

    async def check() -> set[str]:
        async with store.transaction() as conn:
            return await parents.existing_ids(conn, ids)

    assert await check() == {parent.parent_order_id}
    with unreachable_expressions() as found:
        for _ in range(3):
            await check()
    assert found == []


async def test_limits_read_of_a_batch_leaves_no_cyclic_statement(store: Store) -> None:
    """The intake's read of the risk limits (every batch) creates no expression garbage in a
    cycle, nor does the read of what a strategy uses."""

    async def read() -> None:
        async with store.transaction() as conn:
            await limits.effective_for(conn, {"alpha", "beta"})
            await limits.usage(conn, "alpha", datetime.now(UTC).date())

    await read()  # the first execution compiles and caches
    with unreachable_expressions() as found:
        for _ in range(3):
            await read()
    assert found == []
