"""The progress `twap watch` shows: a database read, then events, at least once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from twap_schemas.common import (
    Distribution,
    ExecutionOutcome,
    OrderType,
    ParentStatus,
    Side,
    SliceStatus,
    TimeInForce,
)
from worker.cli.progress import Progress
from worker.core.records import ParentRecord, SliceRecord

T0 = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
PARENT = ParentRecord(
    parent_order_id="p1",
    strategy_id="alpha_1",
    symbol="AAPL",
    side=Side.BUY,
    qty=10,
    order_type=OrderType.MARKET,
    limit_price=None,
    stop_price=None,
    time_in_force=TimeInForce.DAY,
    duration_seconds=3,
    interval_seconds=1,
    max_slice_qty=None,
    distribution=Distribution.FRONT_LOADED,
    start_at=T0,
    trade_date=date(2024, 5, 1),
    request_id=None,
    submitted_by=None,
    total_slices=3,
)


def record(num: int, status: SliceStatus, qty: int = 3) -> SliceRecord:
    return SliceRecord("p1", num, f"c{num}", qty, T0, status)


def event(event_id: str, event_type: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "parent_order_id": "p1", **fields}


def started() -> Progress:
    return Progress.start(
        PARENT,
        [
            record(0, SliceStatus.FILLED, 4),
            record(1, SliceStatus.SCHEDULED),
            record(2, SliceStatus.SCHEDULED),
        ],
    )


def test_database_state_is_the_starting_point() -> None:
    """A parent already running starts with its finished slices counted."""
    progress = started()
    assert (progress.done_slices, progress.sent_qty, progress.finished) == (1, 4, False)


def test_events_count_once_and_never_move_a_slice_back() -> None:
    """A redelivered event changes nothing; a late 'scheduled' cannot undo 'submitted'."""
    progress = started()
    submitted = event("e1", "slice.submitted", slice_num=1, status="submitted", qty=3)
    assert progress.apply(submitted) == [
        "slice 1 submitted qty 3; 1/3 slices done, 7/10 shares sent, 0/10 filled"
    ]
    assert progress.apply(submitted) == []
    assert progress.refresh(PARENT, [record(1, SliceStatus.SCHEDULED)]) == []
    assert progress.sent_qty == 7
    fill = event("e4", "slice.fill", slice_num=1, status="submitted", qty=3, fill_qty=3,
                 fill_price="190.27", filled_qty=3)
    assert progress.apply(fill) == [
        "slice 1 fill 3 at 190.27; 3/10 shares filled, 7/10 sent"]
    assert progress.apply(fill | {"event_id": "e5"}) == []  # the same figure again: nothing
    filled = event("e2", "slice.filled", slice_num=1, status="filled", qty=3)
    assert progress.apply(filled) == [
        "slice 1 filled qty 3; 2/3 slices done, 7/10 shares sent, 3/10 filled"
    ]
    assert progress.apply(submitted | {"event_id": "e3"}) == []  # never back to submitted


def test_other_parents_events_are_ignored() -> None:
    """Events of another parent do not count."""
    progress = started()
    other = {
        **event("e2", "slice.submitted", slice_num=1, status="submitted", qty=3),
        "parent_order_id": "p2",
    }
    assert progress.apply(other) == []


def test_completed_with_every_slice_sent_exits_0() -> None:
    """Completion with every slice submitted is success."""
    progress = started()
    for num in (1, 2):
        progress.apply(
            event(f"s{num}", "slice.submitted", slice_num=num, status="submitted", qty=3)
        )
    assert progress.apply(event("c", "parent.completed")) == [
        "completed: 3/3 slices submitted, 10/10 shares sent, 0/10 filled, avg price -"
    ]
    assert progress.exit_code == 0


def test_completed_with_blocked_slices_exits_1() -> None:
    """Completion with slices blocked by the kill switch is a failure, and says which."""
    progress = started()
    for num in (1, 2):
        progress.apply(
            event(
                f"b{num}",
                "slice.blocked_kill_switch",
                slice_num=num,
                status="blocked_kill_switch",
                qty=3,
                reason="halt",
            )
        )
    lines = progress.apply(event("c", "parent.completed"))
    assert lines == [
        "completed: 1/3 slices submitted, 4/10 shares sent, 0/10 filled, avg price -; "
        "2 blocked_kill_switch"
    ]
    assert progress.exit_code == 1


def test_canceled_exits_1() -> None:
    """A canceled parent is a failure, with the reason."""
    progress = started()
    assert progress.apply(event("x", "parent.canceled", reason="desk")) == [
        "canceled: 1/3 slices submitted, 4/10 shares sent, 0/10 filled, avg price - "
        "(reason: desk)"
    ]
    assert progress.exit_code == 1


def test_fills_show_filled_next_to_sent_and_the_outcome_at_the_end() -> None:
    """Fill events raise the filled qty and the parent's average (trailing zeros dropped);
    parent.completed adds the outcome; the JSON snapshot carries the same figures."""
    progress = started()
    for num, qty, avg in ((1, 3, "190.2700000000"), (2, 3, "190.2750000000")):
        sent = event(f"s{num}", "slice.submitted", slice_num=num, status="submitted", qty=qty)
        progress.apply(sent)
        fill = event(f"f{num}", "slice.fill", slice_num=num, status="submitted", qty=qty,
                     fill_qty=qty, fill_price="190.2800000000" if num == 2 else avg,
                     filled_qty=qty, parent_filled_qty=3 * num, parent_avg_fill_price=avg)
        progress.apply(fill)
    assert progress.apply(event("c", "parent.completed", filled_qty=6, avg_fill_price=
                                "190.2750000000", outcome="partial")) == [
        "completed: 3/3 slices submitted, 10/10 shares sent, 6/10 filled, avg price 190.275, "
        "outcome partial"
    ]
    snapshot = progress.snapshot()
    assert (snapshot["sent_qty"], snapshot["filled_qty"]) == (10, 6)
    assert (snapshot["avg_fill_price"], snapshot["outcome"]) == ("190.275", "partial")


def test_a_database_read_brings_the_parents_average_and_outcome() -> None:
    """Events lost: the database read gives the filled qty, the average (notional / qty)
    and the outcome."""
    progress = started()
    done = replace(PARENT, status=ParentStatus.COMPLETED, filled_qty=10,
                   notional=Decimal("1902.70"), outcome=ExecutionOutcome.FILLED)
    filled = [replace(record(n, SliceStatus.FILLED, q), filled_qty=q) for n, q in
              ((0, 4), (1, 3), (2, 3))]
    lines = progress.refresh(done, filled)
    assert lines[-1] == (
        "completed: 3/3 slices submitted, 10/10 shares sent, 10/10 filled, avg price 190.27, "
        "outcome filled"
    )
