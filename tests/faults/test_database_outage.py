"""PostgreSQL away (a TCP proxy in front of it, cut): the worker stays up, requests wait in the
queue, slices that cannot be claimed end expired once the database is back, nothing goes out
unclaimed; the worker carries on without a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.fault_rig import Rig, rigged
from tests.support.harness import submit_body
from tests.support.queues import message_count
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]

GRACE_SECONDS = 2
OUTAGE_SECONDS = 5.0
SLICES = 10


@pytest.fixture
async def rig(pg_db: str, amqp_url: str, namespace: str) -> AsyncIterator[Rig]:
    """A worker whose database connections go through a proxy; the test reads it directly."""

    def through(proxy: TcpProxy) -> dict[str, Any]:
        return {
            "database_url": SecretStr(proxy.url(pg_db)),
            "misfire_grace_seconds": GRACE_SECONDS,
        }

    async with rigged(
        amqp_url, pg_db, namespace, upstream=pg_db, default_port=5432, overrides=through
    ) as made:
        yield made


async def test_database_outage_holds_requests_expires_unclaimable_slices_and_recovers(
    rig: Rig, amqp_url: str
) -> None:
    """DB cut 5 s: worker up, request waits then goes through, missed slices expire, no
    order without its claim."""
    harness, tap, broker = rig.harness, rig.tap, rig.broker
    task = harness.task
    assert task is not None
    first = await harness.publish(
        submit_body(strategy_id="dbout", qty=SLICES * 3, duration_seconds=SLICES), reply=True
    )
    pid = (await harness.reply_for(first))["parent_order_id"]
    await tap.wait_for(lambda: tap.of("slice.submitted", parent_order_id=pid))

    await rig.proxy.cut()
    cut_at, sends_at_cut = time.monotonic(), broker.attempts
    waiting = await harness.publish(
        submit_body(strategy_id="dbout", duration_seconds=3), reply=True
    )
    await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself: nothing to wait for but time
    sends_during = broker.attempts - sends_at_cut
    assert not task.done(), "the worker stopped during the database outage"
    assert waiting not in harness.replies, "a request was answered while the database was away"
    await rig.proxy.resume()
    resumed_at = time.monotonic()

    reply = await harness.reply_for(waiting, timeout=30)
    answered_after = time.monotonic() - resumed_at
    assert reply["outcome"] == "accepted", reply
    await tap.wait_for(lambda: len(tap.of("parent.completed", strategy_id="dbout")) == 2, within=30)
    assert not task.done(), "the worker stopped after the database outage"

    rows = await rig.probe.slices("dbout")
    statuses = {row.status for row in rows}
    submitted = {row.client_order_id for row in rows if row.at_broker}
    missed = [
        row for row in rows if row.parent_order_id == pid and row.status in {"expired", "failed"}
    ]
    events = {
        (e["parent_order_id"], e["slice_num"])
        for e in tap.of(None, strategy_id="dbout")
        if e["event_type"].startswith("slice.")
    }
    dlq = await message_count(amqp_url, harness.names.dlq)
    sent = sorted(
        broker.orders[r.client_order_id].received_at
        for r in rows
        if r.parent_order_id == pid and r.at_broker
    )
    closest = min(b - a for a, b in pairwise(sent))
    figures = (
        f"outage {resumed_at - cut_at:.1f} s, sends during it {sends_during}, "
        f"slices missed {len(missed)}, statuses {statuses}, waiting request answered "
        f"{answered_after:.1f} s after the database returned, dead-lettered {dlq}, "
        f"closest two orders of the parent {closest:.3f} s"
    )
    assert not statuses & {"scheduled", "submitting"}, figures
    assert set(broker.orders) == submitted, f"orders at the broker != slices submitted; {figures}"
    assert len(events) == len(rows), f"{len(rows) - len(events)} slice events missing; {figures}"
    assert missed and dlq == 0, figures
    print(f"database away: {figures}")
