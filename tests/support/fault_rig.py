"""A worker that reaches one service (RabbitMQ or PostgreSQL) through a TcpProxy the test can
cut, while the test itself talks to both services directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tests.support.db_probe import DbProbe
from tests.support.event_tap import EventTap
from tests.support.harness import Harness
from tests.support.harness import worker_settings as harness_settings
from tests.support.tcp_proxy import TcpProxy
from worker.brokers.sim import SimBroker


@dataclass
class Rig:
    harness: Harness
    tap: EventTap
    proxy: TcpProxy
    probe: DbProbe
    broker: SimBroker


@asynccontextmanager
async def rigged(
    amqp_url: str,
    database_url: str,
    namespace: str,
    *,
    upstream: str,
    default_port: int,
    overrides: Callable[[TcpProxy], Mapping[str, Any]],
) -> AsyncIterator[Rig]:
    """Proxy `upstream` (a URL; `default_port` when it names none) and start the worker with
    `overrides(proxy)`, called once the proxy listens (its port is known only then)."""
    proxy = TcpProxy.for_url(upstream, default_port)
    await proxy.start()
    broker = SimBroker()
    harness = Harness(harness_settings(amqp_url, database_url, namespace), broker=broker)
    await harness.open()
    tap = await EventTap(amqp_url, harness.names).open()
    probe = DbProbe(database_url)
    try:
        await harness.start_worker(**overrides(proxy))
        yield Rig(harness, tap, proxy, probe, broker)
    finally:
        await proxy.resume()
        await harness.close()
        await tap.close()
        await probe.close()
        await proxy.close()
