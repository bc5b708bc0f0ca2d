"""Fill increments from cumulative broker figures: exact, idempotent, order-independent."""

from __future__ import annotations

from decimal import Decimal as D
from decimal import localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.core.fills import (
    Execution,
    FillError,
    average,
    combine,
    increment,
    notional_of,
)


def test_first_update_is_a_fill_of_everything_reported() -> None:
    """From nothing, 40 shares at avg 10.5 is one fill of 40 at 10.5 (notional 420.0)."""
    fill = increment(Execution(), 40, D("10.5"), order_qty=100)
    assert fill is not None
    assert (fill.qty, fill.price, fill.notional) == (40, D("10.5000000000"), D("420.0"))
    assert fill.after == Execution(40, D("420.0"))


def test_second_update_derives_the_price_of_the_new_shares() -> None:
    """40 @ 10 then cumulative 100 @ 10.6: the 60 new shares cost (1060 - 400) / 60 = 11."""
    fill = increment(Execution(40, D("400")), 100, D("10.6"), order_qty=100)
    assert fill is not None
    assert (fill.qty, fill.price, fill.notional) == (60, D("11.0000000000"), D("660.0"))
    assert fill.after == Execution(100, D("1060.0"))


def test_repeated_update_adds_nothing() -> None:
    """The same cumulative view twice: the second is None."""
    assert increment(Execution(40, D("400")), 40, D("10"), order_qty=100) is None


def test_stale_update_adds_nothing() -> None:
    """A view below what is recorded (arrived late) changes nothing."""
    assert increment(Execution(60, D("600")), 40, D("10"), order_qty=100) is None


def test_zero_filled_view_adds_nothing() -> None:
    """An order still working with nothing filled is not a fill."""
    assert increment(Execution(), 0, None, order_qty=100) is None


def test_more_than_ordered_is_refused() -> None:
    """101 filled of a 100-share order is a broker figure we cannot trust."""
    with pytest.raises(FillError, match="exceeds the order qty 100"):
        increment(Execution(), 101, D("10"), order_qty=100)


def test_filled_exactly_the_order_qty_is_accepted() -> None:
    """The boundary: filled qty equal to the order's qty is a complete fill."""
    fill = increment(Execution(), 100, D("1"), order_qty=100)
    assert fill is not None and fill.qty == 100


@pytest.mark.parametrize(
    ("price", "shown"),
    [(None, "None"), (D("0"), "0"), (D("-1"), "-1"), (D("NaN"), "NaN"),
     (D("Infinity"), "Infinity")],
)
def test_fill_without_a_positive_price_is_refused(price: D | None, shown: str) -> None:
    """A fill needs a finite positive average price; the error says which it got."""
    with pytest.raises(FillError) as exc:
        increment(Execution(), 10, price, order_qty=100)
    assert str(exc.value) == f"a fill of 10 shares needs a positive average price, got {shown}"


def test_the_smallest_positive_average_is_a_fill() -> None:
    """An average of 0.0000000001 (one step above zero) is a fill at that price."""
    fill = increment(Execution(), 10, D("1E-10"), order_qty=100)
    assert fill is not None and (fill.qty, fill.price) == (10, D("1E-10"))


def test_implied_non_positive_price_is_refused() -> None:
    """10 @ 20 then cumulative 20 @ 9 would mean the last 10 cost -2: refused."""
    with pytest.raises(FillError) as exc:
        increment(Execution(10, D("200")), 20, D("9"), order_qty=100)
    assert str(exc.value) == (
        "average 9 over 20 shares implies a non-positive price for the last 10")


def test_implied_price_of_exactly_zero_is_refused() -> None:
    """10 @ 20 then cumulative 20 @ 10 would mean the last 10 were free: refused."""
    with pytest.raises(FillError, match="implies a non-positive price for the last 10"):
        increment(Execution(10, D("200")), 20, D("10"), order_qty=100)


def test_notionals_keep_sixty_significant_digits() -> None:
    """A 60-digit product is exact; a 61-digit one is rounded half-even at the 60th digit."""
    # 7 x (10^59 - 1) = 7 x 10^59 - 7: a 6, 58 nines, a 3.
    assert notional_of(7, D("9" * 59)) == D("6" + "9" * 58 + "3")
    # 7 x (10^60 - 1): a 6, 59 nines, a 3; the 3 is rounded away.
    assert notional_of(7, D("9" * 60)) == D("6" + "9" * 59 + "0")


def test_non_terminating_average_is_rounded_half_even_to_ten_places() -> None:
    """100 / 3 = 33.3333333333 (ten places); 2 / 3 rounds up to 0.6666666667."""
    assert average(D("100"), 3) == D("33.3333333333")
    assert average(D("2"), 3) == D("0.6666666667")
    assert average(D("0.00000000005"), 1) == D("0E-10")  # half-even: ...00005 -> ...0000
    assert average(D("0.00000000015"), 1) == D("2E-10")


def test_average_of_nothing_is_none() -> None:
    """No shares filled: no average price."""
    assert average(D("0"), 0) is None
    assert Execution().avg_price is None


def test_notional_stays_exact_for_large_figures() -> None:
    """2,000,000,000 shares at 12345678901.12345678 keep every digit of the product."""
    fill = increment(Execution(), 2_000_000_000, D("12345678901.12345678"), order_qty=2_000_000_000)
    assert fill is not None
    assert fill.notional == D("24691357802246913560.00000000")


def test_parent_execution_sums_its_slices() -> None:
    """Slices 40 @ 400 notional and 60 @ 660: parent 100 shares, avg 10.6."""
    parent = combine([Execution(40, D("400")), Execution(60, D("660")), Execution()])
    assert parent == Execution(100, D("1060"))
    assert parent.avg_price == D("10.6000000000")


updates = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1000),
        st.decimals(min_value=D("0.01"), max_value=D("1000"), places=2),
    ),
    min_size=1,
    max_size=12,
)


@given(updates, st.randoms())
def test_any_order_of_updates_ends_at_the_highest_view(
    views: list[tuple[int, D]], rnd: object
) -> None:
    """Whatever order cumulative views arrive in, the result is the highest one seen."""
    # Make the views a consistent history: cumulative qty rising with a running notional.
    history: list[tuple[int, D]] = []
    qty, notional = 0, D(0)
    # A broker reports averages rounded to its own precision: any decimal will do here.
    for add, price in views:
        qty += add
        notional += price * add
        if qty:
            history.append((qty, notional / qty))
    if not history:
        return
    shuffled = list(history)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    state = Execution()
    for filled, avg in shuffled:
        fill = increment(state, filled, avg, order_qty=qty)
        if fill is not None:
            assert fill.qty > 0
            state = fill.after
    top_qty, top_avg = max(history, key=lambda v: v[0])
    assert state.filled_qty == top_qty
    with localcontext() as ctx:
        ctx.prec = 60
        assert state.notional == top_avg * top_qty


@given(updates)
def test_fills_add_up_to_the_cumulative_notional(views: list[tuple[int, D]]) -> None:
    """Applied in order, the fills' qty and notional sum to the last cumulative view."""
    state = Execution()
    total_qty = 0
    notionals: list[D] = []
    running_qty, running_notional = 0, D(0)
    for add, price in views:
        running_qty += add
        running_notional += price * add
        if running_qty == 0:
            continue
        fill = increment(state, running_qty, running_notional / running_qty, order_qty=10_000_000)
        if fill is not None:
            total_qty += fill.qty
            notionals.append(fill.notional)
            state = fill.after
    assert total_qty == running_qty
    with localcontext() as ctx:
        ctx.prec = 60
        assert sum(notionals, D(0)) == state.notional
