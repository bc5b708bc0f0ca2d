"""Pre-trade risk rules: how rows combine, every limit at intake and before a slice, the rate
of slices, fail closed without a reference price. Expected texts and figures are written out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twap_schemas.common import Distribution, OrderType, Side, TimeInForce
from twap_schemas.errors import ErrorDetail
from worker.core.records import ParentRecord
from worker.core.risk import (
    LIMIT_KEYS,
    Limits,
    NoPrice,
    SliceOrder,
    Turn,
    Usage,
    check_slice,
    check_submit,
    effective,
    needs_reference,
    rate_turn,
)

T0 = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
NO_QUOTE = NoPrice("quote unavailable: market closed")


def parent(qty: int = 100, *, symbol: str = "AAPL", order_type: OrderType = OrderType.MARKET,
           limit_price: str | None = None, stop_price: str | None = None,
           strategy: str = "alpha_1") -> ParentRecord:
    return ParentRecord(
        parent_order_id="p" * 24, strategy_id=strategy, symbol=symbol, side=Side.BUY, qty=qty,
        order_type=order_type,
        limit_price=Decimal(limit_price) if limit_price else None,
        stop_price=Decimal(stop_price) if stop_price else None,
        time_in_force=TimeInForce.DAY, duration_seconds=600, interval_seconds=60,
        max_slice_qty=None, distribution=Distribution.FRONT_LOADED, start_at=T0,
        trade_date=date(2026, 12, 7), request_id=None, submitted_by=None, total_slices=10,
    )


def errors(verdict_errors: list[ErrorDetail]) -> list[tuple[str, str]]:
    return [(e.loc, e.msg) for e in verdict_errors]


# -- rows ---------------------------------------------------------------------------------------
def test_strategy_row_overrides_the_default_per_key() -> None:
    default = Limits(max_qty=10_000, max_open_parents=5, restricted_symbols=frozenset({"GME"}))
    own = Limits(max_qty=500, price_collar_bps=200)
    assert effective(default, own) == Limits(
        max_qty=500, max_open_parents=5, price_collar_bps=200,
        restricted_symbols=frozenset({"GME"}))


def test_missing_rows_mean_no_limit() -> None:
    assert effective(None, None) == Limits()
    assert effective(None, Limits(max_qty=3)) == Limits(max_qty=3)
    assert effective(Limits(max_qty=4), None) == Limits(max_qty=4)


def test_limits_set_keeps_absent_keys_and_removes_nulls() -> None:
    row = Limits(max_qty=10, max_open_parents=2)
    assert row.changed({"max_qty": None, "price_collar_bps": 50}) == Limits(
        max_open_parents=2, price_collar_bps=50)


def test_json_round_trip_writes_only_set_keys() -> None:
    row = Limits(max_qty=10_000, max_notional=Decimal("2500000.50"),
                 allowed_symbols=frozenset({"MSFT", "AAPL"}))
    assert row.to_json() == {"max_qty": 10_000, "max_notional": "2500000.50",
                             "allowed_symbols": ["AAPL", "MSFT"]}
    assert Limits.from_json(row.to_json()) == row
    assert Limits.from_json({"max_qty": None, "restricted_symbols": ["gme"]}) == Limits(
        restricted_symbols=frozenset({"GME"}))


def test_an_unknown_stored_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown limit 'max_qtty'"):
        Limits.from_json({"max_qtty": 1})


limit_rows = st.builds(
    Limits,
    max_qty=st.none() | st.integers(0, 10**9),
    max_notional=st.none() | st.decimals(0, 10**12, places=2),
    max_daily_notional=st.none() | st.decimals(0, 10**12, places=2),
    max_open_parents=st.none() | st.integers(0, 1000),
    max_slices_per_minute=st.none() | st.integers(0, 10_000),
    price_collar_bps=st.none() | st.integers(0, 10_000),
    restricted_symbols=st.none() | st.frozensets(st.sampled_from(["AAPL", "GME", "MSFT"])),
    allowed_symbols=st.none() | st.frozensets(st.sampled_from(["AAPL", "GME", "MSFT"])),
)


@settings(max_examples=200)
@given(limit_rows, limit_rows)
def test_effective_takes_each_key_from_the_strategy_when_set(default: Limits,
                                                              own: Limits) -> None:
    merged = effective(default, own)
    for key in LIMIT_KEYS:
        mine = getattr(own, key)
        assert getattr(merged, key) == (mine if mine is not None else getattr(default, key))
    assert Limits.from_json(merged.to_json()) == merged


# -- intake ---------------------------------------------------------------------------------------
def test_qty_over_max_qty_names_field_limit_and_strategy() -> None:
    verdict = check_submit(parent(12_000), Limits(max_qty=10_000), Usage(), Decimal("190"))
    assert errors(verdict.errors) == [
        ("qty", "12,000 exceeds max_qty 10,000 for strategy alpha_1")]


def test_qty_at_max_qty_passes() -> None:
    assert check_submit(parent(10_000), Limits(max_qty=10_000), Usage(), NO_QUOTE).errors == []


def test_unset_limits_need_no_price_and_pass() -> None:
    verdict = check_submit(parent(10**9), Limits(), Usage(10**6, Decimal(10**15)), NO_QUOTE)
    assert verdict.errors == []
    assert verdict.notional is None


def test_notional_over_max_notional() -> None:
    verdict = check_submit(parent(12_000), Limits(max_notional=Decimal(2_500_000)), Usage(),
                           Decimal("210.50"))
    assert verdict.notional == Decimal("2526000.00")
    assert errors(verdict.errors) == [("qty", (
        "notional 2,526,000.00 (12,000 x 210.50) exceeds max_notional 2,500,000 for "
        "strategy alpha_1"))]


def test_notional_exactly_at_the_limit_passes() -> None:
    verdict = check_submit(parent(100), Limits(max_notional=Decimal("19025")), Usage(),
                           Decimal("190.25"))
    assert verdict.errors == []
    assert verdict.notional == Decimal("19025.00")


def test_daily_notional_counts_what_the_day_already_accepted() -> None:
    limits = Limits(max_daily_notional=Decimal(100_000))
    verdict = check_submit(parent(100), limits, Usage(0, Decimal(90_000)), Decimal(101))
    assert errors(verdict.errors) == [("qty", (
        "notional 10,100 (100 x 101) on 2026-12-07 with 90,000 already accepted exceeds "
        "max_daily_notional 100,000 for strategy alpha_1"))]
    assert check_submit(parent(100), limits, Usage(0, Decimal(90_000)),
                        Decimal(100)).errors == []


def test_open_parents_at_the_limit_refuse_one_more() -> None:
    limits = Limits(max_open_parents=20)
    verdict = check_submit(parent(), limits, Usage(20, Decimal(0)), NO_QUOTE)
    assert errors(verdict.errors) == [(
        "strategy_id", "20 parents open; max_open_parents 20 for strategy alpha_1")]
    assert check_submit(parent(), limits, Usage(19, Decimal(0)), NO_QUOTE).errors == []


def test_restricted_and_allowed_symbols() -> None:
    limits = Limits(restricted_symbols=frozenset({"GME"}), allowed_symbols=frozenset({"AAPL"}))
    assert errors(check_submit(parent(symbol="GME"), limits, Usage(), NO_QUOTE).errors) == [
        ("symbol", "GME is in restricted_symbols for strategy alpha_1"),
        ("symbol", "GME is not in allowed_symbols for strategy alpha_1"),
    ]
    assert check_submit(parent(symbol="AAPL"), limits, Usage(), NO_QUOTE).errors == []


def test_collar_refuses_a_limit_price_too_far_from_the_reference() -> None:
    limits = Limits(price_collar_bps=500)
    far = parent(order_type=OrderType.LIMIT, limit_price="210.01")
    assert errors(check_submit(far, limits, Usage(), Decimal(200)).errors) == [(
        "limit_price", ("210.01 is 500.5 bps from the reference price 200 of AAPL; exceeds "
                        "price_collar_bps 500 for strategy alpha_1"))]
    edge = parent(order_type=OrderType.LIMIT, limit_price="190.00")  # exactly 500 bps below
    assert check_submit(edge, limits, Usage(), Decimal(200)).errors == []


def test_collar_checks_the_stop_price_too() -> None:
    order = parent(order_type=OrderType.STOP_LIMIT, limit_price="200", stop_price="150")
    assert errors(check_submit(order, Limits(price_collar_bps=100), Usage(),
                               Decimal(200)).errors) == [(
        "stop_price", ("150 is 2,500.0 bps from the reference price 200 of AAPL; exceeds "
                       "price_collar_bps 100 for strategy alpha_1"))]


def test_without_a_reference_every_check_that_needs_it_refuses() -> None:
    limits = Limits(max_notional=Decimal(1), max_daily_notional=Decimal(2), price_collar_bps=5)
    order = parent(order_type=OrderType.LIMIT, limit_price="10")
    assert errors(check_submit(order, limits, Usage(), NO_QUOTE).errors) == [
        ("qty", "no reference price for AAPL (quote unavailable: market closed): max_notional 1 "
                "for strategy alpha_1 cannot be checked (fail closed)"),
        ("qty", "no reference price for AAPL (quote unavailable: market closed): "
                "max_daily_notional 2 for strategy alpha_1 cannot be checked (fail closed)"),
        ("limit_price", "no reference price for AAPL (quote unavailable: market closed): "
                        "price_collar_bps 5 for strategy alpha_1 cannot be checked "
                        "(fail closed)"),
    ]


def test_a_collar_on_a_market_order_needs_no_price() -> None:
    assert check_submit(parent(), Limits(price_collar_bps=5), Usage(), NO_QUOTE).errors == []


@pytest.mark.parametrize(
    ("limits", "limit_price", "stop_price", "needed"),
    [
        (Limits(), Decimal(1), Decimal(1), False),
        (Limits(max_qty=1, max_open_parents=1, max_slices_per_minute=1,
                restricted_symbols=frozenset(), allowed_symbols=frozenset()),
         Decimal(1), Decimal(1), False),
        (Limits(max_notional=Decimal(1)), None, None, True),
        (Limits(max_daily_notional=Decimal(1)), None, None, True),
        (Limits(price_collar_bps=1), None, None, False),
        (Limits(price_collar_bps=1), Decimal(1), None, True),
        (Limits(price_collar_bps=1), None, Decimal(1), True),
    ],
)
def test_needs_reference(limits: Limits, limit_price: Decimal | None,
                         stop_price: Decimal | None, needed: bool) -> None:
    assert needs_reference(limits, limit_price, stop_price) is needed


def test_usage_plus_one_parent() -> None:
    assert Usage(2, Decimal(5)).plus(Decimal("1.5")) == Usage(3, Decimal("6.5"))
    assert Usage(2, Decimal(5)).plus(None) == Usage(3, Decimal(5))


@settings(max_examples=200)
@given(qty=st.integers(1, 10**7), cap=st.integers(1, 10**7),
       price=st.decimals(Decimal("0.01"), Decimal(10_000), places=2),
       limit=st.decimals(0, Decimal(10**9), places=2))
def test_refused_exactly_when_a_limit_is_broken(qty: int, cap: int, price: Decimal,
                                                limit: Decimal) -> None:
    verdict = check_submit(parent(qty), Limits(max_qty=cap, max_notional=limit), Usage(), price)
    locs = [e.loc for e in verdict.errors]
    assert locs.count("qty") == (qty > cap) + (qty * price > limit)


# -- before a slice -------------------------------------------------------------------------------
def order(qty: int = 100, *, limit_price: str | None = None, symbol: str = "AAPL") -> SliceOrder:
    return SliceOrder("alpha_1", symbol, qty,
                      Decimal(limit_price) if limit_price else None, None)


def test_slice_within_limits_goes() -> None:
    limits = Limits(max_notional=Decimal(20_000), price_collar_bps=500)
    assert check_slice(order(100, limit_price="200"), limits, Decimal(200)) is None


def test_slice_notional_over_max_notional_is_blocked() -> None:
    assert check_slice(order(101), Limits(max_notional=Decimal(20_000)), Decimal(200)) == (
        "qty: slice notional 20,200 (101 x 200) exceeds max_notional 20,000 for strategy alpha_1")


def test_slice_collar_against_the_price_of_now() -> None:
    assert check_slice(order(limit_price="200"), Limits(price_collar_bps=100),
                       Decimal(220)) == (
        "limit_price: 200 is 909.1 bps from the reference price 220 of AAPL; exceeds "
        "price_collar_bps 100 for strategy alpha_1")


def test_slice_without_a_price_fails_closed() -> None:
    assert check_slice(order(), Limits(max_notional=Decimal(5)), NO_QUOTE) == (
        "qty: no reference price for AAPL (quote unavailable: market closed): max_notional 5 "
        "for strategy alpha_1 cannot be checked (fail closed)")
    assert check_slice(order(), Limits(price_collar_bps=5), NO_QUOTE) is None  # market order


def test_slice_of_a_symbol_restricted_since_intake_is_blocked() -> None:
    assert check_slice(order(symbol="GME"), Limits(restricted_symbols=frozenset({"GME"})),
                       NO_QUOTE) == "symbol: GME is in restricted_symbols for strategy alpha_1"


# -- slices per minute ----------------------------------------------------------------------------
DEADLINE = T0 + timedelta(seconds=60)


def test_no_rate_limit_goes_now() -> None:
    assert rate_turn([T0] * 50, T0, None, DEADLINE, "alpha_1") == Turn(T0)


def test_under_the_rate_goes_now() -> None:
    recent = [T0 - timedelta(seconds=s) for s in (1, 2)]
    assert rate_turn(recent, T0, 3, DEADLINE, "alpha_1") == Turn(T0)


def test_sends_older_than_a_minute_do_not_count() -> None:
    recent = [T0 - timedelta(seconds=60), T0 - timedelta(seconds=61), T0 - timedelta(seconds=5)]
    assert rate_turn(recent, T0, 2, DEADLINE, "alpha_1") == Turn(T0)


def test_over_the_rate_waits_for_the_oldest_to_leave_the_window() -> None:
    recent = [T0 - timedelta(seconds=10), T0 - timedelta(seconds=40), T0 - timedelta(seconds=5)]
    # Two a minute: the second latest (10 s ago) leaves the window 50 s from now.
    assert rate_turn(recent, T0, 2, DEADLINE, "alpha_1") == Turn(T0 + timedelta(seconds=50))


def test_future_turns_already_given_count() -> None:
    recent = [T0 + timedelta(seconds=20)]
    assert rate_turn(recent, T0, 1, DEADLINE + timedelta(seconds=30), "alpha_1") == Turn(
        T0 + timedelta(seconds=80))


def test_a_turn_past_the_grace_blocks() -> None:
    recent = [T0 - timedelta(seconds=1)]
    assert rate_turn(recent, T0, 1, T0 + timedelta(seconds=58), "alpha_1") == Turn(None, (
        "max_slices_per_minute 1 for strategy alpha_1 reached; its next turn "
        "(2026-12-07T15:00:59+00:00) is past the grace (2026-12-07T15:00:58+00:00)"))


def test_a_turn_exactly_at_the_deadline_is_taken() -> None:
    recent = [T0 - timedelta(seconds=1)]
    deadline = T0 + timedelta(seconds=59)
    assert rate_turn(recent, T0, 1, deadline, "alpha_1") == Turn(deadline)


def test_zero_per_minute_blocks_everything() -> None:
    assert rate_turn([], T0, 0, DEADLINE, "alpha_1") == Turn(
        None, "max_slices_per_minute 0 for strategy alpha_1")


@settings(max_examples=200)
@given(offsets=st.lists(st.integers(-120, 60), max_size=30), per_minute=st.integers(1, 10))
def test_a_turn_never_puts_more_than_the_rate_in_any_minute(offsets: list[int],
                                                            per_minute: int) -> None:
    recent = [T0 + timedelta(seconds=o) for o in offsets]
    turn = rate_turn(recent, T0, per_minute, T0 + timedelta(days=1), "alpha_1")
    assert turn.at is not None and turn.at >= T0
    in_window = [t for t in recent if turn.at - timedelta(minutes=1) < t <= turn.at]
    assert len(in_window) < per_minute
    # And it is the earliest such time: a second before, the window was full (or it is now).
    if turn.at > T0:
        before = turn.at - timedelta(seconds=1)
        assert len([t for t in recent if before - timedelta(minutes=1) < t]) >= per_minute


def test_limits_set_takes_symbol_lists_as_upper_cased_sets() -> None:
    assert Limits().changed({"allowed_symbols": ["aapl", "MSFT", "aapl"]}) == Limits(
        allowed_symbols=frozenset({"AAPL", "MSFT"}))


def test_a_refused_symbol_is_refused_for_that_alone() -> None:
    limits = Limits(restricted_symbols=frozenset({"GME"}), max_qty=1,
                    max_notional=Decimal(1))
    verdict = check_submit(parent(50, symbol="GME"), limits, Usage(), NO_QUOTE)
    assert errors(verdict.errors) == [
        ("symbol", "GME is in restricted_symbols for strategy alpha_1")]
    assert verdict.notional is None


def test_default_row_name_and_empty_usage() -> None:
    from worker.core.risk import DEFAULT_ROW

    assert DEFAULT_ROW == "*"
    assert (Usage().open_parents, Usage().daily_notional) == (0, Decimal(0))
    assert isinstance(Usage().daily_notional, Decimal)


def test_records_are_frozen_and_slotted() -> None:
    import dataclasses

    from worker.core.risk import SubmitVerdict

    for record in (Limits(), Usage(), NO_QUOTE, SubmitVerdict([], None), order(), Turn(T0)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, dataclasses.fields(record)[0].name, None)
        assert not hasattr(record, "__dict__")


def test_no_collar_leaves_priced_orders_alone() -> None:
    priced = parent(order_type=OrderType.STOP_LIMIT, limit_price="1", stop_price="1000")
    assert check_submit(priced, Limits(), Usage(), Decimal(200)).errors == []
    assert check_slice(SliceOrder("alpha_1", "AAPL", 1, Decimal(1), Decimal(1000)), Limits(),
                       Decimal(200)) is None


def test_slice_stop_price_collar_and_every_reason_joined() -> None:
    stop = SliceOrder("alpha_1", "GME", 200, None, Decimal(150))
    limits = Limits(price_collar_bps=100, max_notional=Decimal(1000),
                    allowed_symbols=frozenset({"GME"}))
    assert check_slice(stop, limits, Decimal(200)) == (
        "qty: slice notional 40,000 (200 x 200) exceeds max_notional 1,000 for strategy "
        "alpha_1; stop_price: 150 is 2,500.0 bps from the reference price 200 of GME; exceeds "
        "price_collar_bps 100 for strategy alpha_1")
