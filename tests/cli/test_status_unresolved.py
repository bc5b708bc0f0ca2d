"""`twap status` shows a slice whose broker lookup keeps failing as what it is: submitting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.cli.conftest import Cli
from tests.support.alpaca_settings import standin_settings
from tests.support.alpaca_standin import AlpacaStandIn, Fault
from tests.support.harness import Harness
from tests.support.plans import stored_parent
from worker.brokers.factory import build_broker
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.store.repository import Store

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store(harness: Harness) -> AsyncIterator[Store]:
    s = Store.from_url(harness.settings.database_url.get_secret_value())
    yield s
    await s.close()


async def test_status_shows_an_unresolved_slice_as_submitting_with_why(
    store: Store, cli: Cli, alpaca_standin: AlpacaStandIn
) -> None:
    """While the lookup after a restart fails, status lists the slice `submitting`, with the
    failing lookup as its reason."""
    broker = build_broker(standin_settings(alpaca_standin))
    parent, _ = await stored_parent(store, datetime.now(UTC))
    assert await store.claim(parent.parent_order_id, 0, datetime.now(UTC)) is not None
    alpaca_standin.fail_next(*[Fault.http(503, "down", method="GET")] * 1000)
    ex = SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.01, wait_cap=0.05,
                                                      grace=timedelta(seconds=60)),
                       lambda: datetime.now(UTC))
    ((p, record),) = await store.claimed_slices()
    resuming = asyncio.create_task(ex.resume(p, record))
    try:
        assert await asyncio.to_thread(alpaca_standin.wait_for_requests, 2, "GET") >= 2
        data = await cli.json("status", parent.parent_order_id)
        (row,) = data["slices"]
        assert row["status"] == "submitting"
        assert "lookup failed" in row["reason"] and "503" in row["reason"]
    finally:
        alpaca_standin.clear_faults()
        await asyncio.wait_for(resuming, 10)
        await broker.close()
