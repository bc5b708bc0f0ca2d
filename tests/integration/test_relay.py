"""The outbox relay on real RabbitMQ: commit order, slice batch rows expanded in place, and
a row it cannot read holds the line without losing what came before it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from tests.integration.test_store import make_plan
from twap_schemas.common import SliceStatus
from worker.core import events
from worker.messaging.relay import OutboxRelay
from worker.messaging.topology import Names, declare, delete_all
from worker.store.repository import Store

pytestmark = pytest.mark.integration


@pytest.fixture
async def wired(amqp_url: str, namespace: str, store: Store) -> AsyncIterator[
        tuple[OutboxRelay, AbstractQueue]]:
    connection = await aio_pika.connect(amqp_url)
    names = Names(namespace)
    channel = await connection.channel(publisher_confirms=True)
    topology = await declare(channel, names)
    tap = await channel.declare_queue(exclusive=True, auto_delete=True)
    await tap.bind(topology.events, "#")
    relay = OutboxRelay(store)
    relay.attach(channel, topology)
    try:
        yield relay, tap
    finally:
        await delete_all(channel, names)
        await connection.close()


async def _received(queue: AbstractQueue, count: int) -> list[AbstractIncomingMessage]:
    got: list[AbstractIncomingMessage] = []
    for _ in range(200):
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            if len(got) >= count:
                return got
            await asyncio.sleep(0.02)
            continue
        got.append(message)
    return got


async def test_rows_go_out_in_commit_order_with_batches_expanded(
    store: Store, wired: tuple[OutboxRelay, AbstractQueue]
) -> None:
    relay, tap = wired
    now = datetime.now(UTC)
    parent, plan = make_plan()
    await store.create_parent(parent, plan, now)
    canceled = [replace(s, status=SliceStatus.CANCELED) for s in plan]
    batch = events.slice_events_batch(parent, canceled, "stop", at=now)
    await store.write_messages([events.parent_canceled(parent, len(canceled), 0, "stop", at=now),
                                batch,
                                events.control_changed("kill_switch", True, reason="r",
                                                       operator="o", automatic=False, at=now)], now)
    assert await relay.relay_once() == 3
    got = await _received(tap, 2 + len(canceled))
    assert [m.type for m in got] == ["parent.canceled", *["slice.canceled"] * len(canceled),
                                     "control.kill_switch.engaged"]
    assert [json.loads(m.body)["slice_num"] for m in got[1:-1]] == [s.slice_num for s in plan]
    assert [m.message_id for m in got[1:-1]] == [m.message_id for m in events.expand(batch)]
    assert relay.published == len(got)
    assert await store.outbox_backlog() == 0


async def test_an_unreadable_row_stays_and_holds_the_rows_after_it(
    store: Store, wired: tuple[OutboxRelay, AbstractQueue]
) -> None:
    relay, tap = wired
    now = datetime.now(UTC)
    parent, plan = make_plan()
    first = events.parent_canceled(parent, 0, 0, None, at=now)
    broken = replace(events.slice_events_batch(parent, plan, None, at=now), body=b"{not json")
    after = events.control_changed("breaker", True, reason="r", operator=None, automatic=True,
                                   at=now)
    await store.write_messages([first, broken, after], now)
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    got = await _received(tap, 1)
    assert [m.type for m in got] == ["parent.canceled"]
    left = [m.type for _, m in await store.outbox_fetch(10)]
    assert left == [events.SLICE_BATCH, "control.breaker.tripped"]
