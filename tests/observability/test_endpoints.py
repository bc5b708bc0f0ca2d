"""/metrics, /healthz and /readyz of a real worker against real RabbitMQ and databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from tests.observability.pausable_proxy import PausableProxy
from tests.support.harness import Harness, submit_body
from tests.support.harness import worker_settings as settings_for
from worker.app import Worker
from worker.observability.probe import Reply, http_get

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


async def get(port: int, path: str) -> Reply:
    return await http_get("127.0.0.1", port, path)


@pytest.fixture
async def sqlite_harness(
    amqp_url: str, sqlite_db: str, namespace: str, http_port: int
) -> AsyncIterator[Harness]:
    h = Harness(settings_for(amqp_url, sqlite_db, namespace, http_port=http_port))
    await h.open()
    yield h
    await h.close()


async def test_metrics_move_after_a_twap_runs(sqlite_harness: Harness, http_port: int) -> None:
    """A 3-slice TWAP shows up as 1 accepted request, 3 submitted slices, 3 lateness samples."""
    h = sqlite_harness
    await h.start_worker()
    cid = await h.publish(submit_body(qty=6, duration_seconds=3, interval_seconds=1), reply=True)
    pid = (await h.reply_for(cid))["parent_order_id"]
    await h.events.wait_for(lambda: h.events.of("parent.completed", parent_order_id=pid))
    reply = await get(http_port, "/metrics")
    assert reply.status == 200 and reply.content_type.startswith("text/plain")
    found = samples(reply.body.decode())
    assert value(found, "twap_requests_total", outcome="accepted") == 1
    assert value(found, "twap_requests_total", outcome="rejected") == 0
    assert value(found, "twap_slices_total", status="submitted") == 3
    assert value(found, "twap_slices_total", status="filled") == 3  # filled at once, each
    assert value(found, "twap_fills_total") == 3
    assert value(found, "twap_filled_shares_total") == 6
    assert value(found, "twap_slice_lateness_seconds_count") == 3
    assert value(found, "twap_broker_call_seconds_count", operation="submit", result="ok") == 3
    assert value(found, "twap_slice_retries_total") == 0
    assert value(found, "twap_active_parents") == 0
    assert value(found, "twap_pending_slices") == 0
    assert value(found, "twap_kill_switch_engaged") == 0
    assert value(found, "twap_circuit_breaker_tripped") == 0
    assert value(found, "twap_amqp_connected") == 1
    assert value(found, "twap_amqp_consuming") == 1
    assert value(found, "twap_database_up") == 1
    assert value(found, "twap_worker_active") == 1
    assert value(found, "twap_outbox_published_total") > 0


async def test_kill_switch_gauge_follows_control(sqlite_harness: Harness, http_port: int) -> None:
    """Engaging the kill switch over N.control sets twap_kill_switch_engaged to 1."""
    h = sqlite_harness
    await h.start_worker()
    await h.control("kill_switch.engage", reason="test")
    await h.events.wait_for(lambda: h.events.of("control.kill_switch.engaged"))
    found = samples((await get(http_port, "/metrics")).body.decode())
    assert value(found, "twap_kill_switch_engaged") == 1


async def test_ready_worker_answers_healthz_and_readyz(
    sqlite_harness: Harness, http_port: int
) -> None:
    """A started worker: /healthz 200, /readyz 200 with every part ok."""
    await sqlite_harness.start_worker()
    assert (await get(http_port, "/healthz")).status == 200
    ready = await get(http_port, "/readyz")
    assert ready.status == 200, ready.body
    body = ready.json()
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {"leadership", "amqp", "database", "scheduler"}


async def test_readyz_names_the_database_when_it_stops_answering(
    amqp_url: str, pg_db: str, namespace: str, http_port: int
) -> None:
    """Database partitioned away: /readyz 503 naming only `database`; back to 200 after."""
    url = make_url(pg_db)
    proxy = PausableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    h = Harness(settings_for(amqp_url, proxied, namespace, http_port=http_port))
    await h.open()
    try:
        await h.start_worker()
        assert (await get(http_port, "/readyz")).status == 200
        proxy.pause()
        down = await get(http_port, "/readyz")
        assert down.status == 503
        assert down.json()["failing"] == ["database"]
        assert (await get(http_port, "/healthz")).status == 200
        proxy.resume()
        assert (await get(http_port, "/readyz")).status == 200
    finally:
        proxy.resume()
        await h.close()
        await proxy.close()


async def test_standby_answers_probes_but_is_not_ready(
    amqp_url: str, pg_db: str, namespace: str, http_port: int
) -> None:
    """A second worker waiting for leadership: /healthz 200, /readyz 503 naming `leadership`."""
    h = Harness(settings_for(amqp_url, pg_db, namespace))
    await h.open()
    await h.start_worker()
    standby = Worker(h.settings.model_copy(update={"http_port": http_port}))
    task = asyncio.create_task(standby.run())
    try:
        health = await _first_answer(http_port, "/healthz", task)
        assert health.status == 200
        ready = await get(http_port, "/readyz")
        assert ready.status == 503
        assert "leadership" in ready.json()["failing"]
    finally:
        standby.stop()
        await asyncio.wait_for(task, 30)
        await h.close()


async def _first_answer(port: int, path: str, task: asyncio.Task[None]) -> Reply:
    """Poll until the server listens (it binds before leadership, without an event to await)."""
    for _ in range(200):
        if task.done():
            task.result()
        try:
            return await get(port, path)
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing answered on port {port}")
