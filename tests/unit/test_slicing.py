"""Slicing maths: counts, quantities, due times, the liquidity cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.core import slicing
from worker.core.slicing import PlanError


def test_front_loaded_example_from_the_contract() -> None:
    """103 shares over 5 slices → 21, 21, 21, 20, 20."""
    plan = slicing.plan(qty=103, duration_seconds=300, interval_seconds=60, max_slice_qty=None,
                        even_random=False, seed="x")
    assert plan.quantities == (21, 21, 21, 20, 20)
    assert plan.interval_seconds == 60


def test_slice_count_is_ceil_of_duration_over_interval() -> None:
    """301 s at 60 s → 6 slices; duration shorter than the interval → 1 slice."""
    assert slicing.slice_count(100, 301, 60, None) == (6, 60)
    assert slicing.slice_count(100, 30, 60, None) == (1, 60)


def test_max_slice_qty_raises_the_count_and_shrinks_the_interval() -> None:
    """1000 shares, cap 100, over 300 s at 60 s: 10 slices, interval floor(300/9) = 33 s."""
    assert slicing.slice_count(1000, 300, 60, 100) == (10, 33)


def test_max_slice_qty_that_does_not_bind_changes_nothing() -> None:
    """A cap above every slice's qty keeps count and interval."""
    assert slicing.slice_count(100, 300, 60, 50) == (5, 60)


def test_interval_under_one_second_is_an_error_on_max_slice_qty() -> None:
    """Needing 100 slices within 10 s would put them under 1 s apart."""
    with pytest.raises(PlanError) as err:
        slicing.slice_count(100, 10, 5, 1)
    assert err.value.loc == "max_slice_qty"


def test_qty_below_slice_count_is_an_error_on_qty() -> None:
    """3 shares over 5 slices would leave empty slices."""
    with pytest.raises(PlanError) as err:
        slicing.plan(qty=3, duration_seconds=300, interval_seconds=60, max_slice_qty=None,
                     even_random=False, seed="x")
    assert err.value.loc == "qty" and "less than the slice count 5" in err.value.msg


def test_configured_slice_maximum_is_enforced() -> None:
    """A plan above the operator's slice cap names the field to change."""
    with pytest.raises(PlanError) as err:
        slicing.plan(qty=10_000, duration_seconds=86_400, interval_seconds=1, max_slice_qty=None,
                     even_random=False, seed="x", max_slices=1000)
    assert err.value.loc == "interval_seconds" and "86400 slices" in err.value.msg


def test_due_times_start_at_start_and_step_by_interval() -> None:
    """Slice i is due at start + i × interval."""
    start = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
    plan = slicing.plan(qty=10, duration_seconds=100, interval_seconds=20, max_slice_qty=None,
                        even_random=False, seed="x")
    assert [plan.due_time(start, i) for i in range(plan.count)] == [
        start + timedelta(seconds=20 * i) for i in range(5)
    ]


def test_even_random_is_reproducible_and_seeded_by_parent() -> None:
    """The same seed gives the same quantities; the remainder goes to r distinct slices."""
    a = slicing.split_quantity(103, 10, even_random=True, seed="parent-a")
    assert a == slicing.split_quantity(103, 10, even_random=True, seed="parent-a")
    assert sorted(a) == [10] * 7 + [11] * 3
    others = {slicing.split_quantity(103, 10, even_random=True, seed=f"p{i}") for i in range(20)}
    assert len(others) > 1


@given(
    qty=st.integers(1, 10_000_000),
    duration=st.integers(1, 86_400),
    interval=st.integers(1, 3_600),
    cap=st.one_of(st.none(), st.integers(1, 1_000_000)),
    even_random=st.booleans(),
)
def test_plan_properties(qty: int, duration: int, interval: int, cap: int | None,
                         even_random: bool) -> None:
    """Quantities sum to qty, match the count, differ by at most 1, respect the cap, and the
    same input always gives the same plan."""
    try:
        plan = slicing.plan(qty=qty, duration_seconds=duration, interval_seconds=interval,
                            max_slice_qty=cap, even_random=even_random, seed="seed")
    except PlanError as exc:
        assert exc.loc in {"qty", "max_slice_qty"}
        return
    q = plan.quantities
    assert sum(q) == qty
    assert len(q) == plan.count >= 1
    assert max(q) - min(q) <= 1
    assert min(q) >= 1
    if cap is not None:
        assert max(q) <= cap
    assert plan.interval_seconds >= 1
    assert (plan.count - 1) * plan.interval_seconds <= max(duration, 0) or plan.count == 1
    again = slicing.plan(qty=qty, duration_seconds=duration, interval_seconds=interval,
                         max_slice_qty=cap, even_random=even_random, seed="seed")
    assert again == plan
    if not even_random:
        assert list(q) == sorted(q, reverse=True)
