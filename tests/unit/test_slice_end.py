"""When a slice's order is canceled if still working (core.slice_end), and the planned
quantities catch-up reads, written out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from twap_schemas.common import Distribution, OrderType, Side, SliceEnd, TimeInForce
from worker.core.records import ParentRecord
from worker.core.slice_end import order_deadline, parent_end, planned_quantities

START = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
PARENT = ParentRecord(
    parent_order_id="p", strategy_id="s", symbol="AAPL", side=Side.BUY, qty=103,
    order_type=OrderType.MARKET, limit_price=None, stop_price=None,
    time_in_force=TimeInForce.DAY, duration_seconds=50, interval_seconds=10, max_slice_qty=None,
    distribution=Distribution.FRONT_LOADED, start_at=START, trade_date=START.date(),
    request_id=None, submitted_by=None, total_slices=5,
)


def at(seconds: int) -> datetime:
    return START + timedelta(seconds=seconds)


@pytest.mark.parametrize(("slice_end", "keep", "expected"), [
    # cancel at the next slice's due time; the last at the parent's end
    (SliceEnd.CANCEL, False, [at(10), at(20), at(30), at(40), at(50)]),
    (SliceEnd.CANCEL, True, [at(10), at(20), at(30), at(40), at(50)]),
    # keep: every order works until the parent's end, or for ever
    (SliceEnd.KEEP, False, [at(50)] * 5),
    (SliceEnd.KEEP, True, [None] * 5),
])
def test_order_deadlines(slice_end: SliceEnd, keep: bool, expected: list[datetime | None]
                         ) -> None:
    parent = replace(PARENT, slice_end=slice_end, keep_working_after_end=keep)
    assert [order_deadline(parent, n) for n in range(5)] == expected
    assert parent_end(parent) == at(50)


def test_a_next_slice_after_the_end_is_capped_at_the_end() -> None:
    """An interval stretched by max_slice_qty can put slice i + 1 past the end: the end wins."""
    parent = replace(PARENT, duration_seconds=45)
    assert order_deadline(parent, 3) == at(40)
    assert order_deadline(parent, 4) == at(45)


def test_planned_quantities_are_the_plans() -> None:
    assert planned_quantities(PARENT) == (21, 21, 21, 20, 20)
    spread = planned_quantities(replace(PARENT, distribution=Distribution.EVEN_RANDOM))
    assert sorted(spread) == [20, 20, 21, 21, 21] and sum(spread) == 103
