"""The soak benchmark's figure: the least-squares slope of RSS over completed parents."""

from __future__ import annotations

import pytest

from bench.soak import least_squares_slope


def test_slope_of_points_on_a_line_is_its_slope() -> None:
    """Points exactly on y = 3x + 7 give the slope 3."""
    assert least_squares_slope([(1.0, 10.0), (2.0, 13.0), (4.0, 19.0)]) == pytest.approx(3.0)


def test_slope_of_scattered_points_is_the_least_squares_fit() -> None:
    """(0, 1), (1, 3), (2, 2), (3, 5): mean x 1.5, mean y 2.75, Sxy 5.5, Sxx 5, slope 1.1."""
    points = [(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 5.0)]
    assert least_squares_slope(points) == pytest.approx(1.1)


def test_flat_series_has_zero_slope_and_order_does_not_matter() -> None:
    """Equal y values give 0; shuffling the points changes nothing."""
    assert least_squares_slope([(3.0, 92.5), (6.0, 92.5), (9.0, 92.5)]) == 0.0
    points = [(9.0, 4.0), (3.0, 1.0), (6.0, 2.5)]
    assert least_squares_slope(points) == pytest.approx(0.5)


def test_slope_needs_two_distinct_x() -> None:
    """One point, or points that share one x, have no slope: a clear error, not a division."""
    with pytest.raises(ValueError, match="at least 2 points"):
        least_squares_slope([(1.0, 2.0)])
    with pytest.raises(ValueError, match="2 distinct x"):
        least_squares_slope([(1.0, 2.0), (1.0, 3.0)])
