"""Catch-up: a slice makes up for shares earlier slices did not execute, within its caps."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.core.catchup import slice_qty

PLAN = (20, 20, 20, 20, 20)


def test_on_plan_slice_sends_its_planned_qty() -> None:
    """Slices 0-1 filled 40: slice 2 sends its 20."""
    assert slice_qty(PLAN, 2, total_qty=100, filled_qty=40, working_qty=0) == 20


def test_behind_plan_slice_catches_up() -> None:
    """Slices 0-1 filled 25 of 40: slice 2 sends 60 - 25 = 35 (under 2 x 20)."""
    assert slice_qty(PLAN, 2, total_qty=100, filled_qty=25, working_qty=0) == 35


def test_catch_up_is_capped_by_the_ratio() -> None:
    """Nothing filled before slice 2: it would need 60 but ratio 2 caps it at 40."""
    assert slice_qty(PLAN, 2, total_qty=100, filled_qty=0, working_qty=0) == 40


def test_ratio_cap_rounds_down() -> None:
    """Ratio 1.5 of a 15-share slice is 22.5: the cap is 22."""
    plan = (15, 15, 15)
    assert slice_qty(plan, 2, total_qty=45, filled_qty=0, working_qty=0, max_ratio=D("1.5")) == 22


def test_working_qty_counts_as_done() -> None:
    """20 filled and 20 still working: slice 2 sends its 20, not more."""
    assert slice_qty(PLAN, 2, total_qty=100, filled_qty=20, working_qty=20) == 20


def test_never_more_than_what_is_left() -> None:
    """Ahead of plan (95 done): the last slice sends only the 5 left."""
    assert slice_qty(PLAN, 4, total_qty=100, filled_qty=95, working_qty=0) == 5


def test_nothing_left_means_zero() -> None:
    """Everything filled or working: the slice sends nothing."""
    assert slice_qty(PLAN, 3, total_qty=100, filled_qty=70, working_qty=30) == 0


def test_ahead_of_plan_still_sends_the_planned_qty() -> None:
    """Filled 50 before slice 1 (plan 20): slice 1 still sends its 20, not less."""
    assert slice_qty(PLAN, 1, total_qty=100, filled_qty=50, working_qty=0) == 20


def test_without_catch_up_the_plan_holds() -> None:
    """catch_up false: slice 2 sends 20 although nothing filled before it."""
    assert slice_qty(PLAN, 2, total_qty=100, filled_qty=0, working_qty=0, catch_up=False) == 20


def test_without_catch_up_never_more_than_left() -> None:
    """catch_up false and 90 done: the slice sends the 10 left."""
    assert slice_qty(PLAN, 2, total_qty=100, filled_qty=90, working_qty=0, catch_up=False) == 10


def test_first_slice_is_its_plan() -> None:
    """Slice 0 with nothing done sends exactly its planned qty."""
    assert slice_qty((21, 21, 21, 20, 20), 0, total_qty=103, filled_qty=0, working_qty=0) == 21


def test_ratio_one_is_no_catch_up_at_all() -> None:
    """Ratio 1 caps every slice at its planned qty (the lowest allowed ratio)."""
    assert slice_qty(PLAN, 2, total_qty=100, filled_qty=0, working_qty=0, max_ratio=D("1")) == 20


def test_ratio_ten_is_the_highest_allowed() -> None:
    """Ratio 10 lets slice 2 take the whole 60 it is behind."""
    assert slice_qty(PLAN, 2, total_qty=100, filled_qty=0, working_qty=0, max_ratio=D("10")) == 60


@pytest.mark.parametrize("ratio", [D("0.99"), D("10.01")])
def test_ratio_outside_one_to_ten_is_refused(ratio: D) -> None:
    """The contract bounds max_catch_up_ratio to 1-10."""
    with pytest.raises(ValueError, match="within 1-10"):
        slice_qty(PLAN, 0, total_qty=100, filled_qty=0, working_qty=0, max_ratio=ratio)


def test_negative_figures_are_refused() -> None:
    """Filled or working qty below zero is a bug upstream."""
    with pytest.raises(ValueError, match=r"^filled and working qty cannot be negative$"):
        slice_qty(PLAN, 0, total_qty=100, filled_qty=-1, working_qty=0)
    with pytest.raises(ValueError, match=r"^filled and working qty cannot be negative$"):
        slice_qty(PLAN, 0, total_qty=100, filled_qty=0, working_qty=-1)


def test_without_catch_up_nothing_left_means_zero() -> None:
    """catch_up false with everything filled or working: the slice sends 0."""
    assert slice_qty(PLAN, 3, total_qty=100, filled_qty=70, working_qty=30, catch_up=False) == 0


@pytest.mark.parametrize("catch_up", [True, False])
def test_more_done_than_ordered_sends_zero_not_a_negative(catch_up: bool) -> None:
    """70 filled and 40 working of 100 (left -10): the slice sends 0, never a negative qty."""
    assert slice_qty(PLAN, 3, total_qty=100, filled_qty=70, working_qty=40,
                     catch_up=catch_up) == 0


plans = st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=30)
ratios = st.decimals(min_value=1, max_value=10, places=2)


@given(plans, ratios, st.data())
def test_properties_hold_for_any_history(plan: list[int], ratio: D, data: st.DataObject) -> None:
    """Never above ratio x planned, never above what is left, the total never exceeds qty."""
    total = sum(plan)
    done = 0
    for i, planned in enumerate(plan):
        got = slice_qty(plan, i, total_qty=total, filled_qty=done, working_qty=0, max_ratio=ratio)
        assert 0 <= got <= ratio * planned
        assert got <= total - done
        # The broker fills any part of what was sent.
        done += data.draw(st.integers(min_value=0, max_value=got))
        assert done <= total


@given(plans, st.data())
def test_without_catch_up_quantities_are_the_plan(plan: list[int], data: st.DataObject) -> None:
    """catch_up false: every slice sends its planned qty whatever filled before."""
    total = sum(plan)
    done = 0
    for i, planned in enumerate(plan):
        got = slice_qty(plan, i, total_qty=total, filled_qty=done, working_qty=0, catch_up=False)
        assert got == planned
        done += data.draw(st.integers(min_value=0, max_value=got))


@given(plans)
def test_full_fills_reproduce_the_plan(plan: list[int]) -> None:
    """When every slice fills completely, catch-up never changes a quantity."""
    total = sum(plan)
    done = 0
    for i, planned in enumerate(plan):
        got = slice_qty(plan, i, total_qty=total, filled_qty=done, working_qty=0)
        assert got == planned
        done += got
