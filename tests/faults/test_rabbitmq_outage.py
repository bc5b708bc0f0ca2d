"""RabbitMQ away (a TCP proxy in front of it, cut): slices keep going, events wait in the outbox
and all arrive afterwards; the consumer comes back; an ack lost with its channel is harmless."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.fault_rig import Rig, rigged
from tests.support.harness import submit_body
from tests.support.tcp_proxy import TcpProxy
from worker.core.intake import Inbound
from worker.messaging.dispositions import Disposition

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]

PARENTS = 3
SLICES = 6


def amqp_rigged(
    amqp_url: str, database_url: str, namespace: str
) -> AbstractAsyncContextManager[Rig]:
    """A worker whose AMQP connection goes through a proxy; the test watches RabbitMQ directly.
    The worker's URL asks aio-pika to retry every second instead of every five."""

    def through(proxy: TcpProxy) -> dict[str, Any]:
        return {"amqp_url": SecretStr(proxy.url(amqp_url) + "?reconnect_interval=1")}

    return rigged(
        amqp_url, database_url, namespace, upstream=amqp_url, default_port=5672, overrides=through
    )


@pytest.fixture
async def rig(amqp_url: str, database_url: str, namespace: str) -> AsyncIterator[Rig]:
    """On each database kind."""
    async with amqp_rigged(amqp_url, database_url, namespace) as made:
        yield made


@pytest.fixture
async def sqlite_rig(amqp_url: str, sqlite_db: str, namespace: str) -> AsyncIterator[Rig]:
    """On SQLite only: what is pinned does not depend on the database."""
    async with amqp_rigged(amqp_url, sqlite_db, namespace) as made:
        yield made


async def wait_until(predicate: object, what: str, within: float = 30.0) -> None:
    """Poll the database (no event can say it: RabbitMQ is the thing that is away)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_events_written_while_rabbitmq_is_away_all_arrive_in_order(rig: Rig) -> None:
    """RabbitMQ cut mid-TWAP: slices go on; after it returns every event arrives, in order."""
    harness, tap = rig.harness, rig.tap
    correlations = [
        await harness.publish(
            submit_body(
                strategy_id="outbox", qty=30 + n, duration_seconds=SLICES, interval_seconds=1
            ),
            reply=True,
        )
        for n in range(PARENTS)
    ]
    pids = [(await harness.reply_for(c))["parent_order_id"] for c in correlations]
    await tap.wait_for(lambda: len(tap.of("slice.submitted")) >= PARENTS)

    await rig.proxy.cut()
    orders_at_cut = len(rig.broker.orders)
    # Events confirmed just before the cut may still be on their way to the tap (which does
    # not go through the proxy): count them once none has arrived for a moment.
    seen_at_cut = -1
    while seen_at_cut != len(tap.deliveries):
        seen_at_cut = len(tap.deliveries)
        await asyncio.sleep(0.2)

    async def all_completed() -> bool:
        return set((await rig.probe.parents("outbox")).values()) == {"completed"}

    await wait_until(all_completed, "the TWAPs to complete while RabbitMQ is away")
    sent_while_away = len(rig.broker.orders) - orders_at_cut
    backlog = await rig.probe.outbox_backlog()
    assert len(tap.deliveries) == seen_at_cut, "events arrived through a cut proxy"
    assert sent_while_away > 0 and backlog > 0, (
        f"orders sent while RabbitMQ was away: {sent_while_away}; events waiting: {backlog}"
    )

    await rig.proxy.resume()
    # accepted, three events per slice (submitted, fill, filled: market orders fill at once),
    # completed
    expected = PARENTS * (3 * SLICES + 2)
    await tap.wait_for(lambda: len(tap.of(None, strategy_id="outbox")) >= expected, within=30)

    async def outbox_empty() -> bool:
        return await rig.probe.outbox_backlog() == 0

    await wait_until(outbox_empty, "the outbox to be pruned")
    ours = [d for d in tap.deliveries if d.body.get("strategy_id") == "outbox"]
    distinct = tap.of(None, strategy_id="outbox")
    bad_ids = [d for d in ours if d.message_id != d.event_id or d.type != d.body["event_type"]]
    assert not bad_ids, f"{len(bad_ids)} deliveries whose message_id/type differ from the body"
    for pid in pids:
        kinds = [
            (e["event_type"], e.get("slice_num")) for e in distinct if e["parent_order_id"] == pid
        ]
        assert kinds == [
            ("parent.accepted", None),
            *[(kind, n) for n in range(SLICES)
              for kind in ("slice.submitted", "slice.fill", "slice.filled")],
            ("parent.completed", None),
        ], f"events of {pid} out of order: {kinds}"
    print(
        f"RabbitMQ away: {sent_while_away} orders sent meanwhile, {backlog} events held; "
        f"afterwards {len(distinct)}/{expected} events arrived (lost: {expected - len(distinct)},"
        f" redelivered copies: {len(ours) - len(distinct)}), outbox left: 0"
    )


async def test_request_whose_ack_died_with_its_channel_is_a_duplicate(
    sqlite_rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Connection cut between commit and ack: the redelivery yields request.duplicate only."""
    rig = sqlite_rig
    worker = rig.harness.worker
    assert worker is not None
    consumer = worker.requests_consumer
    original = consumer.handler
    committed, release = asyncio.Event(), asyncio.Event()
    deliveries = 0

    async def held(batch: list[Inbound], prepared: object = None) -> list[Disposition]:
        nonlocal deliveries
        deliveries += len(batch)
        dispositions = await original(batch, prepared)
        if not committed.is_set():
            committed.set()
            await release.wait()  # the connection dies here, before the ack
        return dispositions

    consumer.handler = held
    request_id = uuid.uuid4().hex
    await rig.harness.publish(submit_body(strategy_id="lostack", request_id=request_id))
    await asyncio.wait_for(committed.wait(), 15)
    with caplog.at_level(logging.WARNING, logger="worker.messaging.consumer"):
        await rig.proxy.cut()
        release.set()
        await rig.proxy.resume()
        tap = rig.tap
        await tap.wait_for(lambda: tap.of("request.duplicate"), within=30)
    assert any(r.getMessage() == "amqp.settle_failed" for r in caplog.records)

    # The consumer is back: a new request goes through.
    cid = await rig.harness.publish(
        submit_body(strategy_id="lostack", duration_seconds=2), reply=True
    )
    assert (await rig.harness.reply_for(cid, timeout=30))["outcome"] == "accepted"
    await tap.wait_for(lambda: len(tap.of("parent.completed", strategy_id="lostack")) == 2)
    accepted = tap.of("parent.accepted", strategy_id="lostack")
    duplicates = tap.of("request.duplicate")
    slices = await rig.probe.slices("lostack")
    assert len(accepted) == 2 and len(duplicates) == 1, (
        f"parent.accepted: {len(accepted)}, request.duplicate: {len(duplicates)}"
    )
    assert duplicates[0]["parent_order_id"] in {e["parent_order_id"] for e in accepted}
    assert len(rig.broker.orders) == len(slices) == rig.broker.attempts, (
        f"slices {len(slices)}, orders {len(rig.broker.orders)}, sends {rig.broker.attempts}"
    )
    print(
        f"lost ack: the first request was delivered {deliveries - 1} times, 2 parents, "
        f"{len(rig.broker.orders)} orders for {len(slices)} slices, 1 request.duplicate"
    )
