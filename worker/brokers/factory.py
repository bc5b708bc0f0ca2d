"""Choose the broker adapter the settings name."""

from __future__ import annotations

from worker.brokers.base import Broker
from worker.brokers.sim import SimBroker
from worker.settings import Settings


def build_broker(settings: Settings) -> Broker:
    if settings.broker == "sim":
        return SimBroker(ledger_path=settings.sim_ledger_path,
                         latency=settings.sim_latency_ms / 1000)
    raise NotImplementedError("the alpaca adapter is not wired yet")
