"""Fill increments from cumulative broker figures: exact, idempotent, order-independent."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime
from decimal import Decimal as D
from decimal import localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twap_schemas.common import SliceStatus
from worker.core.fills import (
    NOT_FILLED_REASON,
    Execution,
    FillError,
    average,
    combine,
    increment,
    notional_of,
    view_step,
)
from worker.core.records import SliceRecord


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


# -- the step a broker view makes ---------------------------------------------------------------

T = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)


def _working(filled: int = 0, notional: str = "0", broker_order_id: str | None = "b-1",
             qty: int = 10) -> SliceRecord:
    return SliceRecord(parent_order_id="p", slice_num=3, client_order_id="c", qty=qty,
                       scheduled_time=T, status=SliceStatus.SUBMITTED,
                       broker_order_id=broker_order_id, attempts=1, filled_qty=filled,
                       fill_notional=D(notional))


def test_a_view_that_adds_nothing_and_does_not_end_is_no_step() -> None:
    assert view_step(_working(4, "40"), filled_qty=4, avg_price=D("10"), ended=False,
                     broker_order_id="b-1") is None
    assert view_step(_working(4, "40"), filled_qty=3, avg_price=D("10"), ended=False,
                     broker_order_id="b-1") is None


def test_a_fill_of_a_working_order_keeps_it_working() -> None:
    step = view_step(_working(4, "40"), filled_qty=6, avg_price=D("10.5"), ended=False,
                     broker_order_id="b-1")
    assert step is not None and step.fill is not None
    # 6 at 10.5 is 63.0; 40 of it was there: 2 new shares for 23.0, at 11.5.
    assert (step.fill.qty, step.fill.price, step.fill.notional) == (2, D("11.5"), D("23.0"))
    assert step.after == step.filled
    assert (step.after.status, step.after.filled_qty, step.after.fill_notional) == (
        SliceStatus.SUBMITTED, 6, D("63.0"))
    assert (step.ended, step.released) == (False, 0)


def test_the_last_fill_ends_the_slice_filled_without_a_reason() -> None:
    record = replace(_working(4, "40"), reason="an earlier lookup's note")
    step = view_step(record, filled_qty=10, avg_price=D("11"), ended=True,
                     broker_order_id="b-1", reason="the broker's word")
    assert step is not None and step.fill is not None
    assert step.fill.qty == 6
    assert (step.filled.status, step.filled.filled_qty) == (SliceStatus.SUBMITTED, 10)
    assert (step.after.status, step.after.reason, step.after.filled_qty) == (
        SliceStatus.FILLED, None, 10)
    assert (step.ended, step.released) == (True, 0)


def test_an_order_ended_short_closes_the_slice_and_releases_the_rest() -> None:
    step = view_step(_working(4, "40"), filled_qty=7, avg_price=D("10"), ended=True,
                     broker_order_id="b-1", reason="canceled at the slice's end")
    assert step is not None and step.fill is not None and step.fill.qty == 3
    assert (step.after.status, step.after.reason, step.after.filled_qty) == (
        SliceStatus.CLOSED, "canceled at the slice's end", 7)
    assert (step.ended, step.released) == (True, 3)


def test_an_order_ended_with_nothing_new_is_a_step_without_a_fill() -> None:
    step = view_step(_working(4, "40"), filled_qty=4, avg_price=D("10"), ended=True,
                     broker_order_id="b-1")
    assert step is not None
    assert step.fill is None and step.filled == _working(4, "40")
    assert (step.after.status, step.after.reason) == (SliceStatus.CLOSED, NOT_FILLED_REASON)
    assert NOT_FILLED_REASON == "ended at the broker before it filled completely"
    assert (step.ended, step.released) == (True, 6)


def test_a_fill_names_the_broker_order_only_when_the_slice_had_none() -> None:
    kept = view_step(_working(broker_order_id="b-1"), filled_qty=1, avg_price=D("1"),
                     ended=False, broker_order_id="b-2")
    named = view_step(_working(broker_order_id=None), filled_qty=1, avg_price=D("1"),
                      ended=False, broker_order_id="b-2")
    assert kept is not None and kept.after.broker_order_id == "b-1"
    assert named is not None and named.after.broker_order_id == "b-2"


def test_a_view_that_cannot_be_right_is_refused_before_any_step() -> None:
    with pytest.raises(FillError, match="exceeds the order qty 10"):
        view_step(_working(), filled_qty=11, avg_price=D("1"), ended=True,
                  broker_order_id="b-1")


def test_a_step_is_immutable() -> None:
    """The store writes a step's records and builds its events from them: neither may change
    in between."""
    step = view_step(_working(), filled_qty=1, avg_price=D("1"), ended=False,
                     broker_order_id="b-1")
    assert step is not None
    with pytest.raises(FrozenInstanceError):
        step.after = step.filled  # type: ignore[misc]
    assert not hasattr(step, "__dict__")  # slots: one is built per broker view


def test_what_stops_working_is_the_fill_and_what_the_end_released() -> None:
    filled = view_step(_working(4, "40"), filled_qty=6, avg_price=D("10"), ended=False,
                       broker_order_id="b-1")
    closed = view_step(_working(4, "40"), filled_qty=7, avg_price=D("10"), ended=True,
                       broker_order_id="b-1")
    assert filled is not None and filled.unworked == 2
    assert closed is not None and closed.unworked == 3 + 3
