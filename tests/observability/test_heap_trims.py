"""A real worker trims the C heap once after each stretch of work, at a quiet moment, and
not while it idles (observability.heap, app.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.harness import Harness, submit_body, worker_settings
from worker.app import Worker

pytestmark = pytest.mark.integration


@pytest.fixture
async def harness(amqp_url: str, sqlite_db: str, namespace: str) -> AsyncIterator[Harness]:
    h = Harness(worker_settings(amqp_url, sqlite_db, namespace))
    await h.open()
    yield h
    await h.close()


def trims(worker: Worker) -> float:
    return worker.metrics.registry.get_sample_value("twap_heap_trim_seconds_count") or 0.0


async def run_a_twap(h: Harness) -> None:
    cid = await h.publish(submit_body(qty=6, duration_seconds=3, interval_seconds=1), reply=True)
    pid = (await h.reply_for(cid))["parent_order_id"]
    await h.events.wait_for(lambda: h.events.of("parent.completed", parent_order_id=pid))


async def test_trims_follow_work_and_stop_while_idle(harness: Harness) -> None:
    worker = await harness.start_worker(heap_trim_seconds=0.2)
    await asyncio.sleep(1.0)
    assert trims(worker) == 0  # no work yet: nothing to give back
    await run_a_twap(harness)
    await asyncio.sleep(1.0)  # the first quiet look after the last slice trims
    after_work = trims(worker)
    assert after_work >= 1
    await asyncio.sleep(1.5)  # seven more looks at an idle worker
    assert trims(worker) == after_work


async def test_no_trims_when_turned_off(harness: Harness) -> None:
    worker = await harness.start_worker(heap_trim_seconds=0)
    await run_a_twap(harness)
    await asyncio.sleep(1.0)
    assert trims(worker) == 0
