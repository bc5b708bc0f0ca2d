"""Durations and --since as operators type them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.cli.durations import BadDuration, parse_seconds, parse_since

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("30m", 1800),
        ("1h30m", 5400),
        ("2H", 7200),
        ("1d", 86400),
    ],
)
def test_durations_parse_to_seconds(text: str, seconds: int) -> None:
    """Bare numbers are seconds; s, m, h, d units combine."""
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "30x", "m", "1.5h", "-5s", "5 m"])
def test_bad_durations_are_refused(text: str) -> None:
    """Anything else is an error that shows the expected forms."""
    with pytest.raises(BadDuration, match=r"e\.g\. 90s, 30m"):
        parse_seconds(text)


def test_since_takes_a_duration_a_date_or_a_timestamp() -> None:
    """--since 2h is two hours back; a date is UTC midnight; a timestamp keeps its offset."""
    assert parse_since("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_since("2024-04-30", NOW) == datetime(2024, 4, 30, tzinfo=UTC)
    assert parse_since("2024-04-30T10:00:00+02:00", NOW) == datetime(2024, 4, 30, 8, tzinfo=UTC)
    with pytest.raises(BadDuration):
        parse_since("yesterday", NOW)
