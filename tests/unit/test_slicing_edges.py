"""Slicing exactly on its boundaries, and the exact words of each plan error."""

from __future__ import annotations

import dataclasses

import pytest

from worker.core import slicing
from worker.core.slicing import PlanError, SlicePlan


def plan(qty: int, duration: int, interval: int, cap: int | None = None,
         max_slices: int | None = None) -> SlicePlan:
    return slicing.plan(qty=qty, duration_seconds=duration, interval_seconds=interval,
                        max_slice_qty=cap, even_random=False, seed="s", max_slices=max_slices)


def test_plan_error_reads_field_colon_reason() -> None:
    """str(PlanError) is 'loc: msg', with loc and msg kept apart too."""
    err = PlanError("qty", "too small")
    assert (str(err), err.loc, err.msg) == ("qty: too small", "qty", "too small")


def test_slice_plan_is_immutable() -> None:
    """A plan cannot be changed after it is made."""
    made = plan(10, 100, 20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.interval_seconds = 1  # type: ignore[misc]


def test_a_zero_duration_still_gives_one_slice() -> None:
    """ceil(0 / interval) is 0; the count never goes below 1."""
    assert slicing.slice_count(10, 0, 60, None) == (1, 60)


def test_slices_exactly_one_second_apart_are_allowed() -> None:
    """10 slices of at most 1 share over 9 s: 9 // 9 = 1 s apart, the smallest spacing."""
    assert slicing.slice_count(10, 9, 5, 1) == (10, 1)


def test_slices_under_one_second_apart_are_refused_with_the_reason() -> None:
    """11 slices over 9 s would be 0 s apart: the error says how many and over how long."""
    with pytest.raises(PlanError) as err:
        slicing.slice_count(11, 9, 5, 1)
    assert (err.value.loc, err.value.msg) == (
        "max_slice_qty",
        "needs 11 slices, which would be under 1 s apart over 9 s; "
        "raise max_slice_qty or the duration")


def test_qty_equal_to_the_slice_count_gives_one_share_each() -> None:
    """5 shares over 5 slices is allowed: every slice has exactly 1."""
    assert plan(5, 300, 60).quantities == (1, 1, 1, 1, 1)


def test_qty_one_below_the_slice_count_is_refused_with_the_reason() -> None:
    """4 shares over 5 slices would leave one empty."""
    with pytest.raises(PlanError) as err:
        plan(4, 300, 60)
    assert (err.value.loc, err.value.msg) == (
        "qty", "4 is less than the slice count 5; no slice may be empty")


def test_a_plan_of_exactly_the_configured_maximum_is_allowed() -> None:
    """5 slices against a maximum of 5 passes; against 4 it names interval_seconds."""
    assert plan(100, 300, 60, max_slices=5).count == 5
    with pytest.raises(PlanError) as err:
        plan(100, 300, 60, max_slices=4)
    assert (err.value.loc, err.value.msg) == (
        "interval_seconds", "the plan would have 5 slices; the configured maximum is 4")


def test_too_many_slices_because_of_the_cap_names_max_slice_qty() -> None:
    """When the liquidity cap raised the count, the field to change is max_slice_qty."""
    with pytest.raises(PlanError) as err:
        plan(1000, 300, 60, cap=100, max_slices=9)
    assert (err.value.loc, err.value.msg) == (
        "max_slice_qty", "the plan would have 10 slices; the configured maximum is 9")
