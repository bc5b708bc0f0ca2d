"""The pure rules of the Alpaca trade updates stream: its URL, the reconnect backoff, a slow
subscriber's queue; and Quote.reference."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.support.alpaca_imports import stream_base_urls
from worker.brokers.alpaca_stream import (
    LIVE_STREAM_URL,
    PAPER_STREAM_URL,
    _Subscriber,
    backoff,
    trade_stream_url,
)
from worker.brokers.orders import Lifecycle, OrderView, Quote, Resync


@pytest.mark.parametrize(
    ("stream", "base", "paper", "expected"),
    [
        ("ws://10.0.0.5:9000/s", "https://example.test", True, "ws://10.0.0.5:9000/s"),
        (None, "http://127.0.0.1:8080", True, "ws://127.0.0.1:8080/stream"),
        (None, "http://127.0.0.1:8080/v2/", True, "ws://127.0.0.1:8080/stream"),
        (None, "https://broker.example.test/api/v2", False, "wss://broker.example.test/stream"),
        (None, "HTTPS://Proxy.example.test:8443?x=1", True, "wss://Proxy.example.test:8443/stream"),
        ("  ", "  ", True, "wss://paper-api.alpaca.markets/stream"),
        (None, None, True, "wss://paper-api.alpaca.markets/stream"),
        (None, None, False, "wss://api.alpaca.markets/stream"),
    ],
)
def test_stream_url(stream: str | None, base: str | None, paper: bool, expected: str) -> None:
    """ALPACA_STREAM_URL, else ALPACA_BASE_URL's host with ws/wss and /stream, else Alpaca's."""
    assert trade_stream_url(stream, base, paper) == expected


@pytest.mark.parametrize("base", ["ftp://host/x", "127.0.0.1:8080", "http://"])
def test_unusable_base_url_names_the_settings(base: str) -> None:
    with pytest.raises(ValueError, match=r"ALPACA_BASE_URL .*ALPACA_STREAM_URL"):
        trade_stream_url(None, base, True)


def test_alpacas_own_urls_are_alpaca_pys() -> None:
    assert (PAPER_STREAM_URL, LIVE_STREAM_URL) == stream_base_urls()


@pytest.mark.parametrize(
    ("failures", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (100, 10.0), (0, 0.5)],
)
def test_backoff_doubles_up_to_the_cap(failures: int, expected: float) -> None:
    assert backoff(failures, 0.5, 10.0) == expected


def view(n: int) -> OrderView:
    return OrderView("c", "b", Lifecycle.WORKING, n, None, datetime(2026, 12, 4, tzinfo=UTC))


async def test_a_subscriber_that_falls_behind_gets_one_resync_for_its_backlog() -> None:
    """Limit 2: the third unread item replaces the backlog by a Resync; later ones queue."""
    subscriber = _Subscriber(limit=2)
    for n in range(1, 4):
        subscriber.put(view(n))
    subscriber.put(view(4))
    assert [await subscriber.get() for _ in range(2)] == [Resync(), view(4)]
    assert not subscriber.items


@pytest.mark.parametrize(
    ("bid", "ask", "last", "reference"),
    [
        ("190.25", "190.30", "1", Decimal("190.275")),
        ("0", "190.30", "190.28", Decimal("190.28")),
        (None, "190.30", "190.28", Decimal("190.28")),
        ("190.25", None, None, None),
        (None, None, None, None),
    ],
)
def test_quote_reference_is_mid_else_last(
    bid: str | None, ask: str | None, last: str | None, reference: Decimal | None
) -> None:
    def d(text: str | None) -> Decimal | None:
        return None if text is None else Decimal(text)

    quote = Quote("AAPL", d(bid), d(ask), d(last), datetime(2026, 12, 4, tzinfo=UTC))
    assert quote.reference == reference
