"""The soak benchmark's figure: the least-squares slope of RSS over completed parents."""

from __future__ import annotations

import pytest

from bench.soak import growth, least_squares_slope


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


def rounds_of_3000(rss_mib: list[float]) -> list[tuple[int, float]]:
    return [(3000 * (n + 1), rss) for n, rss in enumerate(rss_mib)]


def test_growth_of_a_leak_is_the_same_over_all_rounds_and_the_second_half() -> None:
    """3 MiB more after every round of 3,000 parents: 3,072 KiB per 3,000 = 1,024 per 1,000,
    fitted over rounds 2..20 and over 11..20 alike."""
    slope, later_from, later = growth(rounds_of_3000([90.0 + 3 * n for n in range(20)]))
    assert later_from == 11
    assert slope == pytest.approx(1024.0)
    assert later == pytest.approx(1024.0)


def test_growth_leaves_the_first_round_out() -> None:
    """A first round 8 MiB below a flat line does not count: warming up is not growth."""
    slope, _, later = growth(rounds_of_3000([92.0] + [100.0] * 19))
    assert slope == 0.0
    assert later == 0.0


def test_one_allocator_step_mid_run_reads_as_growth_over_all_rounds_not_the_second_half() -> None:
    """Rounds 2..10 at 100 MiB, 11..20 at 101: x = 6, 9, ..., 60 thousand (mean 33,
    Sxx = 9 * 2 * (1 + 4 + ... + 81) = 5,130), Sxy = 1,024 * (0 + 3 + ... + 27) = 138,240:
    +26.95 KiB per 1,000 over rounds 2..20; nothing over 11..20."""
    slope, later_from, later = growth(rounds_of_3000([99.0] + [100.0] * 9 + [101.0] * 10))
    assert later_from == 11
    assert slope == pytest.approx(138_240 / 5_130)
    assert later == 0.0


def test_growth_of_a_short_run() -> None:
    """Four rounds (--quick): rounds 2..4 fitted, the second half is rounds 3..4; one round
    has no slope at all."""
    slope, later_from, later = growth(rounds_of_3000([10.0, 11.0, 12.0, 14.0]))
    assert later_from == 3
    assert slope == pytest.approx(1.5 * 1024 / 3)  # 1.5 MiB per round of 3,000
    assert later == pytest.approx(2 * 1024 / 3)
    assert growth(rounds_of_3000([10.0])) == (None, 1, None)


def test_forty_rounds_halve_what_one_lasting_step_reads() -> None:
    """The default run: rounds 2..20 at 100 MiB, 21..40 at 100.5 (a 0.5 MiB block taken once,
    never given back). x = 6, 9, ..., 120 thousand (mean 63, Sxx = 9 * 2 * (1 + 4 + ... + 361)
    = 44,460), Sxy = 512 * 3 * (0 + 1 + ... + 19) = 291,840: +6.56 KiB per 1,000 over rounds
    2..40, where the same step over 20 rounds reads +13.47 (256 * 270 / 5,130); nothing over
    rounds 21..40."""
    slope, later_from, later = growth(rounds_of_3000([99.5] + [100.0] * 19 + [100.5] * 20))
    assert later_from == 21
    assert slope == pytest.approx(291_840 / 44_460)
    assert later == 0.0
    short, _, _ = growth(rounds_of_3000([99.5] + [100.0] * 9 + [100.5] * 10))
    assert short == pytest.approx(69_120 / 5_130)
