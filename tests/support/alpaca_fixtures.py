"""Pytest fixtures for the Alpaca stand-in; load with `pytest_plugins = [...]` in a test module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.alpaca_settings import standin_settings
from tests.support.alpaca_standin import AlpacaStandIn
from worker.brokers.alpaca import AlpacaBroker
from worker.brokers.factory import build_broker


@pytest.fixture
def alpaca_standin() -> Iterator[AlpacaStandIn]:
    """A fresh stand-in per test; fails the test if a request crashed a server thread."""
    standin = AlpacaStandIn().start()
    try:
        yield standin
    finally:
        standin.stop()
    assert not standin.errors, f"stand-in handler errors: {standin.errors!r}"


@pytest.fixture
async def alpaca_broker(alpaca_standin: AlpacaStandIn) -> AsyncIterator[AlpacaBroker]:
    """The real adapter, built by the factory, talking to the stand-in."""
    broker = build_broker(standin_settings(alpaca_standin))
    assert isinstance(broker, AlpacaBroker)
    try:
        yield broker
    finally:
        await broker.close()
