"""A cancel racing a firing slice never leaves a slice both sent and canceled."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from twap_schemas import RequestContext, SubmitRequest, parse_request
from twap_schemas.common import SliceStatus
from worker.brokers.sim import SimBroker
from worker.core.planning import build_plan
from worker.runtime.execution import ExecutionPolicy, SliceExecutor
from worker.store.repository import Store

TRIALS = 60


async def test_cancel_racing_the_slice_many_times(database_url: str) -> None:
    """60 trials of cancel vs fire on the same slice: sent ⇔ filled (the sim fills a market
    order at once), canceled ⇔ not sent."""
    store = Store.from_url(database_url)
    broker = SimBroker(latency=0.001)
    executor = SliceExecutor(store, broker, ExecutionPolicy(first_wait=0.0),
                             lambda: datetime.now(UTC))
    outcomes: dict[str, int] = {"filled": 0, "canceled": 0}
    try:
        for trial in range(TRIALS):
            now = datetime.now(UTC)
            body = {"type": "submit", "strategy_id": "race", "symbol": "AAPL", "side": "buy",
                    "qty": 1, "duration_seconds": 1, "request_id": f"trial-{trial}"}
            req = parse_request(json.dumps(body).encode(), RequestContext(now=now))
            assert isinstance(req, SubmitRequest)
            parent, plan = build_plan(req, now=now)
            await store.create_parent(parent, plan, now)
            pid = parent.parent_order_id
            # Alternate which side starts first so both interleavings are exercised.
            fire = executor.run(pid, 0, plan[0].scheduled_time)
            cancel = store.cancel(pid, "race", now + timedelta(milliseconds=1))
            results = await asyncio.gather(*((fire, cancel) if trial % 2 else (cancel, fire)))
            result = next(r for r in results if r is not None)
            (row,) = await store.get_slices(pid)
            at_broker = row.client_order_id in broker.orders
            assert row.status in {SliceStatus.FILLED, SliceStatus.CANCELED}, row.status
            assert at_broker == (row.status is SliceStatus.FILLED), (trial, row.status)
            if row.status is SliceStatus.CANCELED:
                # Canceled before its claim, or claimed and then stopped by the guard read
                # right before the send.
                assert (len(result.canceled), result.in_flight) in {(1, 0), (0, 1)}, result
                if result.in_flight:
                    assert row.reason == "parent canceled"
            outcomes[row.status.value] += 1
    finally:
        await store.close()
    assert sum(outcomes.values()) == TRIALS, f"{TRIALS} trials: {outcomes}"
