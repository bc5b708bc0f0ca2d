"""Pytest fixtures for the Alpaca stand-in; load with `pytest_plugins = [...]` in a test module."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.alpaca_settings import STANDIN_KEY, STANDIN_SECRET, standin_settings
from tests.support.alpaca_standin import AlpacaStandIn
from tests.support.alpaca_stream import TradeStreamStandIn
from worker.brokers.alpaca import AlpacaBroker
from worker.brokers.factory import build_broker


@pytest.fixture
def alpaca_standin() -> Iterator[AlpacaStandIn]:
    """A fresh stand-in per test, with its trade updates stream attached; fails the test if a
    request crashed a server thread."""
    stream = TradeStreamStandIn(STANDIN_KEY, STANDIN_SECRET).start()
    standin = AlpacaStandIn(stream=stream).start()
    try:
        yield standin
    finally:
        standin.stop()
        stream.stop()
    assert not standin.errors, f"stand-in handler errors: {standin.errors!r}"
    assert not stream.errors, f"stream stand-in errors: {stream.errors!r}"


@pytest.fixture
async def alpaca_broker(alpaca_standin: AlpacaStandIn) -> AsyncIterator[AlpacaBroker]:
    """The real adapter, built by the factory, talking to the stand-in."""
    broker = build_broker(standin_settings(alpaca_standin))
    assert isinstance(broker, AlpacaBroker)
    try:
        yield broker
    finally:
        await broker.close()
