"""A request that makes the handler fail every time ends in N.requests.dlq after the delivery
limit, body untouched, with the reason; the requests around it go through."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest

from tests.support.harness import Harness, submit_body
from tests.support.harness import worker_settings as harness_settings
from worker.core.intake import IntakeItem
from worker.messaging.topology import DELIVERY_LIMIT
from worker.store.intake import IntakeResult
from worker.store.repository import Store

pytestmark = [pytest.mark.faults, pytest.mark.timeout(60)]

POISON = b'"strategy_id": "poison"'


@pytest.fixture
async def harness(amqp_url: str, sqlite_db: str, namespace: str) -> AsyncIterator[Harness]:
    """On SQLite: what is pinned does not depend on the database."""
    h = Harness(harness_settings(amqp_url, sqlite_db, namespace))
    await h.open()
    yield h
    await h.close()


async def test_poison_request_is_dead_lettered_after_the_delivery_limit(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose transaction fails every time: DLQ after the limit, x-death says why."""
    attempts = 0
    apply_intake = Store.apply_intake

    async def failing(
        self: Store, items: list[IntakeItem], now: datetime, queue: str, redate: Any = None,
        screening: Any = None,
    ) -> list[IntakeResult]:
        nonlocal attempts
        if any(POISON in item.inbound.body for item in items):
            attempts += len(items) == 1
            raise RuntimeError("injected: this request breaks the transaction")
        return await apply_intake(self, items, now, queue, redate, screening)

    monkeypatch.setattr(Store, "apply_intake", failing)
    await harness.start_worker()
    poison = submit_body(strategy_id="poison")
    raw = json.dumps(poison).encode()
    await harness.publish(raw, message_id="poison-1")
    healthy = await harness.publish(submit_body(strategy_id="healthy"), reply=True)
    assert (await harness.reply_for(healthy))["outcome"] == "accepted"

    (dead,) = await harness.dlq_messages(1, timeout=30)
    assert dead.body == raw, "the dead-lettered body differs from the published one"
    death: dict[str, Any] = dead.headers["x-death"][0]  # type: ignore[index]
    assert death["reason"] == "delivery_limit", death
    assert death["queue"] == harness.names.requests, death
    assert attempts == DELIVERY_LIMIT + 1, f"handled {attempts} times"
    assert harness.worker is not None and harness.task is not None and not harness.task.done()
    print(
        f"poison message: handled {attempts} times, then dead-lettered with "
        f"reason={death['reason']} from {death['queue']}; the healthy request was accepted"
    )
