"""The sim market: fixed quotes, the matching rule per order type and side, ioc/fok, chunks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from twap_schemas.common import OrderType, Side, TimeInForce
from worker.brokers.sim_market import (
    Market,
    Quote,
    Step,
    _Walk,
    name_price,
    step,
)
from worker.settings import parse_prices

T0 = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
Q = Quote(bid=D("99.99"), ask=D("100.01"), last=D("100"))


def test_quote_applies_half_the_spread_each_side() -> None:
    """ref 190.25, 2 bps: bid 190.23 (floor of 190.230975), ask 190.27 (ceil of 190.269025)."""
    q = Market(prices={"AAPL": D("190.25")}).quote("AAPL", T0)
    assert (q.bid, q.ask, q.last) == (D("190.23"), D("190.27"), D("190.25"))


def test_wide_spread() -> None:
    """ref 100, 100 bps: bid 99.50, ask 100.50, mid 100."""
    q = Market(prices={"X": D("100")}, spread_bps=D(100)).quote("X", T0)
    assert (q.bid, q.ask, q.mid) == (D("99.50"), D("100.50"), D("100.00"))


def test_unlisted_symbol_gets_a_stable_price_from_its_name() -> None:
    """The same name always gives the same price, between 10 and 500, in cents."""
    p = name_price("ZZZZ")
    assert p == name_price("ZZZZ")
    assert D(10) <= p <= D(500)
    assert p == p.quantize(D("0.01"))
    assert name_price("AAAA") != name_price("AAAB")


def test_a_spread_of_ten_thousand_bps_is_the_whole_price() -> None:
    """10,000 bps is 100%: ref 1000 quotes bid 500.00 (half below) and ask 1500.00 (half above)."""
    q = Market(prices={"X": D("1000")}, spread_bps=D(10_000)).quote("X", T0)
    assert (q.bid, q.ask, q.last) == (D("500.00"), D("1500.00"), D("1000"))


@pytest.mark.parametrize(
    ("symbol", "price"), [("AAPL", "472.14"), ("ZZZZ", "389.14"), ("X", "76.41")]
)
def test_name_prices_are_fixed(symbol: str, price: str) -> None:
    """Golden: 10.00 + (SHA-256 of the name, first 8 bytes big-endian, mod 49,001) cents."""
    assert name_price(symbol) == D(price)


def test_no_volatility_means_the_price_never_moves() -> None:
    """Volatility 0: the same quote a day later."""
    m = Market(prices={"X": D("50")})
    assert m.quote("X", T0) == m.quote("X", T0 + timedelta(hours=5))


def test_random_walk_is_deterministic_and_moves() -> None:
    """Two markets with the same settings agree at every second; the price does move."""
    a = Market(prices={"X": D("50")}, volatility_bps=D(50))
    b = Market(prices={"X": D("50")}, volatility_bps=D(50))
    seen = {a.reference("X", T0 + timedelta(seconds=s)) for s in range(0, 600, 60)}
    assert len(seen) > 1
    for s in (0, 1, 59, 3600):
        at = T0 + timedelta(seconds=s)
        assert a.reference("X", at) == b.reference("X", at)


MIDNIGHT = datetime(2026, 12, 1, tzinfo=UTC)


def test_random_walk_golden_values() -> None:
    """Golden: from the reference at midnight UTC, one standard normal step a second."""
    m = Market(prices={"X": D("100")}, volatility_bps=D(100))
    seen = [m.reference("X", MIDNIGHT + timedelta(seconds=s)) for s in (0, 1, 2, 3, 60)]
    assert seen == [D("100.00"), D("99.92"), D("99.34"), D("97.68"), D("91.83")]


def test_one_bps_of_volatility_already_moves_the_price() -> None:
    """The smallest volatility, 1 bps, walks too: ref 100 is 99.91 one minute after midnight."""
    m = Market(prices={"X": D("100")}, volatility_bps=D(1))
    assert m.reference("X", MIDNIGHT + timedelta(seconds=60)) == D("99.91")


def test_without_volatility_no_walk_is_drawn() -> None:
    """Volatility 0 returns the configured price as given and keeps no random walk."""
    m = Market(prices={"X": D("190.255")})
    assert m.reference("X", MIDNIGHT + timedelta(hours=5)) == D("190.255")
    assert m._walks == {}


def test_walks_are_kept_per_symbol_for_the_day_only() -> None:
    """One walk per symbol and day, reused all day; a later day's first read drops the older."""
    m = Market(prices={"X": D("50"), "Y": D("60")}, volatility_bps=D(10))
    m.reference("X", MIDNIGHT + timedelta(seconds=10))
    x_walk = m._walks[("X", MIDNIGHT.date())]
    m.reference("Y", MIDNIGHT + timedelta(seconds=20))
    m.reference("X", MIDNIGHT + timedelta(seconds=30))
    assert set(m._walks) == {("X", MIDNIGHT.date()), ("Y", MIDNIGHT.date())}
    assert m._walks[("X", MIDNIGHT.date())] is x_walk
    next_day = MIDNIGHT + timedelta(days=1)
    m.reference("Y", next_day)
    assert set(m._walks) == {("Y", next_day.date())}


def test_a_walk_carries_no_instance_dict() -> None:
    """A walk is slotted: one is kept per symbol and day."""
    assert not hasattr(_Walk(random.Random(0)), "__dict__")


def test_random_walk_is_seeded_by_trade_date() -> None:
    """The same second of two different days follows two different walks."""
    m = Market(prices={"X": D("50")}, volatility_bps=D(100))
    day1 = [m.reference("X", T0 + timedelta(seconds=s)) for s in range(1, 300, 30)]
    day2 = [m.reference("X", T0 + timedelta(days=1, seconds=s)) for s in range(1, 300, 30)]
    assert day1 != day2


def test_parse_prices() -> None:
    """`AAPL=190.25,msft=410` gives both, symbols upper-cased; a cent is a price."""
    assert parse_prices("AAPL=190.25, msft=410") == {"AAPL": D("190.25"), "MSFT": D("410")}
    assert parse_prices("") == {}
    assert parse_prices("PENNY=0.01") == {"PENNY": D("0.01")}


@pytest.mark.parametrize("bad", ["AAPL", "AAPL=", "AAPL=x", "AAPL=0", "AAPL=-1", "=5"])
def test_parse_prices_names_the_bad_pair(bad: str) -> None:
    """A pair without a positive decimal is refused, naming it."""
    with pytest.raises(ValueError, match="expected SYMBOL=positive decimal"):
        parse_prices(bad)


def go(
    side: Side,
    order_type: OrderType,
    *,
    limit: str | None = None,
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.DAY,
    remaining: int = 100,
    chunk: int = 0,
    first_look: bool = True,
    triggered: bool = False,
    quote: Quote = Q,
) -> Step:
    return step(
        side=side,
        order_type=order_type,
        time_in_force=tif,
        limit_price=D(limit) if limit else None,
        stop_price=D(stop) if stop else None,
        remaining=remaining,
        triggered=triggered,
        first_look=first_look,
        chunk=chunk,
        quote=quote,
    )


def test_an_empty_step_does_nothing() -> None:
    """A step's defaults: nothing filled, no price, not triggered, the order not ended."""
    assert (Step().fill_qty, Step().price, Step().triggered, Step().done) == (0, None, False, None)


def test_market_buy_fills_at_the_ask() -> None:
    """A market buy fills whole at the ask."""
    s = go(Side.BUY, OrderType.MARKET)
    assert (s.fill_qty, s.price, s.done) == (100, D("100.01"), "filled")


def test_market_sell_fills_at_the_bid() -> None:
    """A market sell fills whole at the bid."""
    s = go(Side.SELL, OrderType.MARKET)
    assert (s.fill_qty, s.price, s.done) == (100, D("99.99"), "filled")


@pytest.mark.parametrize(
    ("side", "limit", "fills", "price"),
    [
        (Side.BUY, "100.01", True, "100.01"),  # ask == limit: fills at the ask
        (Side.BUY, "100.02", True, "100.01"),  # better than the ask: still the ask
        (Side.BUY, "100.00", False, None),  # below the ask: rests
        (Side.SELL, "99.99", True, "99.99"),  # bid == limit
        (Side.SELL, "99.98", True, "99.99"),
        (Side.SELL, "100.00", False, None),  # above the bid: rests
    ],
)
def test_limit_orders(side: Side, limit: str, fills: bool, price: str | None) -> None:
    """A limit buy fills while ask <= limit, a limit sell while bid >= limit, at the touch."""
    s = go(side, OrderType.LIMIT, limit=limit)
    assert s.fill_qty == (100 if fills else 0)
    assert s.price == (D(price) if price else None)
    assert s.done == ("filled" if fills else None)


@pytest.mark.parametrize(
    ("side", "stop", "triggers"),
    [
        (Side.BUY, "100.01", True),  # ask reached the stop
        (Side.BUY, "100.02", False),  # ask still below
        (Side.SELL, "99.99", True),  # bid fell to the stop
        (Side.SELL, "99.98", False),
    ],
)
def test_stop_orders_trigger_then_act_as_market(side: Side, stop: str, triggers: bool) -> None:
    """A stop buy triggers when the ask rises to it, a stop sell when the bid falls to it."""
    s = go(side, OrderType.STOP, stop=stop)
    assert s.triggered is triggers
    assert s.fill_qty == (100 if triggers else 0)


def test_triggered_stop_stays_triggered() -> None:
    """Once triggered, a stop trades at the touch even when the price moved back."""
    s = go(Side.BUY, OrderType.STOP, stop="200", triggered=True)
    assert (s.fill_qty, s.price) == (100, D("100.01"))


def test_stop_limit_triggers_then_rests_at_its_limit() -> None:
    """Stop 100 triggers on ask 100.01; limit 100.00 is below the ask, so it rests triggered."""
    s = go(Side.BUY, OrderType.STOP_LIMIT, stop="100", limit="100.00")
    assert (s.triggered, s.fill_qty, s.done) == (True, 0, None)
    s = go(Side.BUY, OrderType.STOP_LIMIT, stop="100", limit="100.01")
    assert (s.triggered, s.fill_qty, s.price) == (True, 100, D("100.01"))


def test_chunks_fill_part_and_keep_working() -> None:
    """Chunk 30 of 100: 30 fill now, the order keeps working; the last chunk ends it."""
    s = go(Side.BUY, OrderType.MARKET, chunk=30)
    assert (s.fill_qty, s.done) == (30, None)
    s = go(Side.BUY, OrderType.MARKET, chunk=30, remaining=10, first_look=False)
    assert (s.fill_qty, s.done) == (10, "filled")


def test_ioc_fills_what_it_can_and_cancels_the_rest() -> None:
    """ioc with chunk 30: 30 fill, the order ends canceled."""
    s = go(Side.BUY, OrderType.MARKET, chunk=30, tif=TimeInForce.IOC)
    assert s.fill_qty == 30
    assert s.done is not None and s.done.startswith("canceled")


def test_ioc_that_cannot_fill_is_canceled() -> None:
    """A non-marketable ioc limit ends at once with nothing filled."""
    s = go(Side.BUY, OrderType.LIMIT, limit="90", tif=TimeInForce.IOC)
    assert s.fill_qty == 0
    assert s.done is not None and s.done.startswith("canceled")


def test_fok_fills_all_or_nothing() -> None:
    """fok fills whole when it can; with chunks smaller than the order it is canceled."""
    assert go(Side.BUY, OrderType.MARKET, tif=TimeInForce.FOK).done == "filled"
    s = go(Side.BUY, OrderType.MARKET, tif=TimeInForce.FOK, chunk=30)
    assert s.fill_qty == 0
    assert s.done is not None and s.done.startswith("canceled")
    s = go(Side.BUY, OrderType.MARKET, tif=TimeInForce.FOK, chunk=100)
    assert (s.fill_qty, s.done) == (100, "filled")


def test_resting_day_order_does_nothing_when_not_marketable() -> None:
    """A day limit below the ask rests: nothing fills, it does not end."""
    s = go(Side.BUY, OrderType.LIMIT, limit="50", first_look=False)
    assert (s.fill_qty, s.price, s.done) == (0, None, None)
