"""When the worker trims the C heap: once after work, at a quiet moment (observability.heap)."""

from __future__ import annotations

from collections.abc import Callable

from worker.observability.heap import trim_due


def due_in(seconds: float | None) -> tuple[list[int], Callable[[], float | None]]:
    asked: list[int] = []

    def next_due_in() -> float | None:
        asked.append(1)
        return seconds

    return asked, next_due_in


def test_after_work_with_nothing_busy_and_nothing_due_soon_it_trims() -> None:
    assert trim_due(True, 0, lambda: None) is True  # nothing armed
    assert trim_due(True, 0, lambda: 0.51) is True
    assert trim_due(True, 0, lambda: 30.0) is True


def test_a_slice_due_within_half_a_second_waits_for_the_next_look() -> None:
    assert trim_due(True, 0, lambda: 0.5) is False
    assert trim_due(True, 0, lambda: 0.1) is False
    assert trim_due(True, 0, lambda: -1.0) is False  # overdue


def test_no_work_since_the_last_trim_or_anything_busy_needs_no_look_at_the_schedule() -> None:
    asked, next_due_in = due_in(None)
    assert trim_due(False, 0, next_due_in) is False  # idle: nothing new to give back
    assert trim_due(True, 1, next_due_in) is False  # a slice or a request batch in hand
    assert trim_due(True, 7, next_due_in) is False
    assert asked == []
    assert trim_due(True, 0, next_due_in) is True
    assert asked == [1]
