"""The trade-updates stand-in speaks the protocol alpaca-py's real TradingStream expects."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.alpaca_standin import _new_order
from tests.support.alpaca_stream import TradeStreamStandIn, update

pytestmark = pytest.mark.integration

KEY, SECRET = "stream-key", "stream-secret"

with warnings.catch_warnings():
    # alpaca-py's stream imports the deprecated websockets.legacy (a warning about alpaca-py).
    warnings.simplefilter("ignore", DeprecationWarning)
    from alpaca.trading.stream import TradingStream


@pytest.fixture
def stream_standin() -> Iterator[TradeStreamStandIn]:
    standin = TradeStreamStandIn(KEY, SECRET).start()
    try:
        yield standin
    finally:
        standin.stop()
    assert not standin.errors, f"stand-in errors: {standin.errors!r}"


class Client:
    """alpaca-py's TradingStream on a thread of its own (its run() owns an event loop)."""

    def __init__(self, standin: TradeStreamStandIn, key: str = KEY, secret: str = SECRET) -> None:
        self.standin = standin
        self.received: list[Any] = []
        self.stream = TradingStream(key, secret, paper=True, url_override=standin.url)

        async def on_update(data: Any) -> None:
            self.received.append(data)

        self.stream.subscribe_trade_updates(on_update)
        self.thread = threading.Thread(target=self.stream.run, daemon=True)
        self.thread.start()

    def wait(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not met")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.stream._loop is not None:
            self.stream.stop()
        # Its receive loop looks at the stop request only between 5-second reads: wake it.
        self.standin.drop()
        self.thread.join(10)
        assert not self.thread.is_alive()


def order(
    status: str = "partially_filled", filled: str = "40", avg: str | None = "10.5"
) -> dict[str, Any]:
    body = {
        "symbol": "AAPL",
        "qty": "100",
        "side": "buy",
        "type": "limit",
        "time_in_force": "day",
        "limit_price": "11",
    }
    o = _new_order(body, "cid-1")
    o.update(status=status, filled_qty=filled, filled_avg_price=avg)
    return o


def test_a_pushed_fill_arrives_as_a_parsed_trade_update(stream_standin: TradeStreamStandIn) -> None:
    """authenticate, listen, then a partial_fill reaches the handler with cumulative figures."""
    client = Client(stream_standin)
    try:
        stream_standin.wait_listening()
        stream_standin.push("partial_fill", order(), price="10.5", qty="40")
        client.wait(lambda: len(client.received) == 1)
        got = client.received[0]
        assert got.event == "partial_fill"
        assert got.order.client_order_id == "cid-1"
        assert (got.order.filled_qty, got.order.filled_avg_price) == ("40", "10.5")
        assert (got.price, got.qty) == (10.5, 40)
    finally:
        client.stop()


def test_repeated_and_reordered_updates_are_delivered_as_sent(
    stream_standin: TradeStreamStandIn,
) -> None:
    """`repeat` sends one update twice; push_frames sends frames in the order given."""
    client = Client(stream_standin)
    try:
        stream_standin.wait_listening()
        stream_standin.push("partial_fill", order(), price="10.5", qty="40", repeat=2)
        later = update("fill", order("filled", "100", "10.8"), price="11", qty="60")
        earlier = update(
            "partial_fill", order("partially_filled", "70", "10.7"), price="11", qty="30"
        )
        stream_standin.push_frames([later, earlier])
        client.wait(lambda: len(client.received) == 4)
        assert [u.order.filled_qty for u in client.received] == ["40", "40", "100", "70"]
    finally:
        client.stop()


def test_dropped_stream_reconnects_and_replays_nothing(stream_standin: TradeStreamStandIn) -> None:
    """After drop() the client reconnects by itself; what was pushed meanwhile is lost."""
    client = Client(stream_standin)
    try:
        stream_standin.wait_listening()
        stream_standin.drop()
        stream_standin.push("partial_fill", order(), price="10.5", qty="40")  # nobody listens
        stream_standin.wait_listening()
        assert stream_standin.connections == 2
        stream_standin.push("fill", order("filled", "100", "10.8"), price="11", qty="60")
        client.wait(lambda: len(client.received) == 1)
        assert client.received[0].event == "fill"
    finally:
        client.stop()


def test_held_updates_never_reach_the_client(stream_standin: TradeStreamStandIn) -> None:
    """holding=True drops updates (a fill only polling can find); releasing resumes delivery."""
    client = Client(stream_standin)
    try:
        stream_standin.wait_listening()
        stream_standin.holding = True
        stream_standin.push("fill", order("filled", "100", "10.8"), price="11", qty="60")
        stream_standin.holding = False
        stream_standin.push("canceled", order("canceled", "0", None))
        client.wait(lambda: len(client.received) == 1)
        assert client.received[0].event == "canceled"
    finally:
        client.stop()


def test_wrong_credentials_are_refused(stream_standin: TradeStreamStandIn) -> None:
    """A client with the wrong secret is answered `unauthorized` and never listens."""
    client = Client(stream_standin, secret="wrong")
    try:
        deadline = time.monotonic() + 10
        while stream_standin.auth_failures == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stream_standin.auth_failures >= 1
        with pytest.raises(TimeoutError):
            stream_standin.wait_listening(timeout=0.5)
    finally:
        client.stop()
