"""The guards are read again right before a send: a slice that waited in the broker's rate
limiter is stopped by a kill switch, a breaker, a cancel or the grace that came meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from tests.support.alpaca_settings import STANDIN_KEY, STANDIN_SECRET, TEST_TIMEOUT
from tests.support.alpaca_standin import AlpacaStandIn
from tests.support.plans import stored_parent
from twap_schemas.common import SliceStatus
from worker.brokers.alpaca import AlpacaBroker
from worker.brokers.ratelimit import RateLimiter
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.store.repository import Store

pytest_plugins = ["tests.support.alpaca_fixtures"]
pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ORDERS = "/v2/orders"


class WatchedLimiter(RateLimiter):
    """The adapter's limiter, telling the test how many calls have started waiting for a turn."""

    def __init__(self, max_calls: int, period: float) -> None:
        super().__init__(max_calls, period)
        self.entered = 0
        self.changed = asyncio.Event()

    async def wait(self, op: str, client_order_id: str | None = None) -> float:
        self.entered += 1
        self.changed.set()
        return await super().wait(op, client_order_id)

    async def until_entered(self, n: int) -> None:
        while self.entered < n:
            self.changed.clear()
            await self.changed.wait()


@pytest.fixture
async def limiter() -> WatchedLimiter:
    # A burst of one call, then one a second: the second slice waits about a second.
    return WatchedLimiter(2, 1.0)


@pytest.fixture
async def broker(alpaca_standin: AlpacaStandIn, limiter: WatchedLimiter
                 ) -> AsyncIterator[AlpacaBroker]:
    built = AlpacaBroker(api_key=SecretStr(STANDIN_KEY), secret_key=SecretStr(STANDIN_SECRET),
                         base_url=alpaca_standin.url, timeout_seconds=TEST_TIMEOUT,
                         limiter=limiter)
    yield built
    await built.close()


@pytest.mark.parametrize(
    ("stop", "status", "event", "reason"),
    [
        ("kill_switch", SliceStatus.BLOCKED_KILL_SWITCH, "slice.blocked_kill_switch", "halt"),
        ("breaker", SliceStatus.BLOCKED_CIRCUIT_BREAKER, "slice.blocked_circuit_breaker",
         "desk trip"),
        ("cancel", SliceStatus.CANCELED, "slice.canceled", "parent canceled"),
        ("grace", SliceStatus.EXPIRED, "slice.expired", "late to be sent"),
    ],
)
async def test_a_slice_waiting_in_the_rate_limiter_is_guarded_again_before_it_is_sent(
    store: Store, broker: AlpacaBroker, limiter: WatchedLimiter, alpaca_standin: AlpacaStandIn,
    stop: str, status: SliceStatus, event: str, reason: str,
) -> None:
    """Claimed, then queued behind the limiter while a guard changes: never sent, ends in the
    guard's status with its event."""
    grace = timedelta(seconds=0.5 if stop == "grace" else 60)
    ex = SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0, grace=grace),
                       lambda: datetime.now(UTC))
    start = datetime.now(UTC)
    first_parent, (first,) = await stored_parent(store, start)
    waiting_parent, (waiting,) = await stored_parent(store, start)

    await ex.run(first_parent.parent_order_id, 0, first.scheduled_time)  # takes the burst
    queued = asyncio.create_task(
        ex.run(waiting_parent.parent_order_id, 0, waiting.scheduled_time))
    await limiter.until_entered(2)  # claimed, now waiting for its turn
    now = datetime.now(UTC)
    if stop == "kill_switch":
        await store.set_switch("kill_switch", True, now, reason="halt", operator="t")
    elif stop == "breaker":
        await store.set_switch("breaker", True, now, reason="desk trip", operator="t")
    elif stop == "cancel":
        await store.cancel(waiting_parent.parent_order_id, "desk", now)
    await queued

    (sent,) = await store.get_slices(first_parent.parent_order_id)
    (stopped,) = await store.get_slices(waiting_parent.parent_order_id)
    assert sent.status is SliceStatus.FILLED
    assert stopped.status is status, (stopped.status, stopped.reason)
    assert stopped.reason is not None and reason in stopped.reason
    assert stopped.attempts == 0
    assert alpaca_standin.count("POST", ORDERS) == 1, "the queued order reached the broker"
    assert not alpaca_standin.orders_for(waiting.client_order_id)
    types = [m.type for _, m in await store.outbox_fetch(50)
             if m.parent_order_id == waiting_parent.parent_order_id]
    assert event in types
