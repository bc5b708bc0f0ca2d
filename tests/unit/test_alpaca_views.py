"""Alpaca's order JSON read into OrderView: exact decimals, aware UTC times, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from worker.brokers.alpaca_views import order_view, price, timestamp, whole_qty
from worker.brokers.orders import Lifecycle, OrderView


def raw(**changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
        "client_order_id": "p1-s0",
        "status": "partially_filled",
        "filled_qty": "40",
        "filled_avg_price": "190.123456789",
        "created_at": "2026-12-04T15:30:00.000001Z",
        "updated_at": "2026-12-04T15:30:02.5Z",
        "filled_at": None,
    }
    order.update(changes)
    return order


def test_a_partial_fill_reads_exactly() -> None:
    """filled_qty and filled_avg_price from their strings, at updated_at."""
    assert order_view(raw()) == OrderView(
        client_order_id="p1-s0",
        broker_order_id="61e69015-8549-4bfd-b9c3-01e75843f47d",
        lifecycle=Lifecycle.WORKING,
        filled_qty=40,
        avg_fill_price=Decimal("190.123456789"),
        at=datetime(2026, 12, 4, 15, 30, 2, 500000, tzinfo=UTC),
    )


def test_closed_order_carries_the_reason_of_its_status() -> None:
    view = order_view(raw(status="expired"))
    assert (view.lifecycle, view.reason, view.filled_qty) == (
        Lifecycle.CLOSED, "expired at the broker", 40)


def test_event_decides_and_its_timestamp_is_the_time() -> None:
    """A trade update's event and timestamp win over the order's status and times."""
    view = order_view(raw(status="filled"), event="done_for_day",
                      at="2026-12-04T20:00:00.123-05:00")
    assert (view.lifecycle, view.reason) == (Lifecycle.CLOSED, "done for day at the broker")
    assert view.at == datetime(2026, 12, 5, 1, 0, 0, 123000, tzinfo=UTC)


def test_nothing_filled_has_no_average_even_if_alpaca_sends_one() -> None:
    view = order_view(raw(status="new", filled_qty="0", filled_avg_price="0"))
    assert (view.filled_qty, view.avg_fill_price) == (0, None)


def test_missing_times_fall_back_in_order_and_a_naive_time_is_utc() -> None:
    view = order_view(raw(updated_at=None, filled_at="2026-12-04T15:31:00"))
    assert view.at == datetime(2026, 12, 4, 15, 31, tzinfo=UTC)
    view = order_view(raw(updated_at="garbage", filled_at=None))
    assert view.at == datetime(2026, 12, 4, 15, 30, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": None}, "id: missing or not text"),
        ({"client_order_id": ""}, "client_order_id: missing or not text"),
        ({"status": 3}, "status: missing or not text"),
        ({"filled_qty": "0.5"}, "filled_qty: '0.5' is not a whole, non-negative number"),
        ({"filled_qty": "-1"}, "filled_qty: '-1' is not a whole"),
        ({"filled_qty": "lots"}, "filled_qty: 'lots' is not a number"),
        ({"filled_qty": "NaN"}, "filled_qty: 'NaN' is not a finite number"),
        ({"filled_avg_price": None}, "filled_avg_price: missing while filled_qty is 40"),
        ({"filled_avg_price": "-3"}, "filled_avg_price: '-3' is negative"),
        ({"created_at": None, "updated_at": None}, "order: none of updated_at"),
    ],
)
def test_unreadable_fields_are_named(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        order_view(raw(**changes))


def test_not_an_object_is_an_error() -> None:
    with pytest.raises(ValueError, match="order: expected an object, got list"):
        order_view([])


@pytest.mark.parametrize(
    ("value", "expected"), [("40", 40), ("40.000", 40), (None, 0), ("", 0), (7, 7)]
)
def test_whole_qty(value: Any, expected: int) -> None:
    assert whole_qty(value, "q") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("190.25", Decimal("190.25")), (190.25, Decimal("190.25")), (0.1, Decimal("0.1")),
     (None, None), ("", None)],
)
def test_price_is_exact(value: Any, expected: Decimal | None) -> None:
    """A JSON number is read through its shortest text (0.1 stays 0.1)."""
    assert price(value, "p") == expected


def test_bool_is_not_a_number() -> None:
    with pytest.raises(ValueError, match="p: True is not a number"):
        price(True, "p")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-04T15:30:00Z", datetime(2026, 12, 4, 15, 30, tzinfo=UTC)),
        ("2026-12-04T15:30:00.123456789Z", datetime(2026, 12, 4, 15, 30, 0, 123456, tzinfo=UTC)),
        ("2026-12-04T10:30:00-05:00", datetime(2026, 12, 4, 15, 30, tzinfo=UTC)),
        ("nope", None),
        (None, None),
        (17, None),
    ],
)
def test_timestamp(value: Any, expected: datetime | None) -> None:
    assert timestamp(value) == expected


TIMES = ("updated_at", "filled_at", "canceled_at", "expired_at", "submitted_at", "created_at")


@pytest.mark.parametrize("present", TIMES)
def test_any_one_of_the_orders_times_is_enough(present: str) -> None:
    """With only one of its times set, the view is at that time."""
    order = raw(**{name: None for name in TIMES})
    order[present] = "2026-12-04T16:00:00Z"
    assert order_view(order).at == datetime(2026, 12, 4, 16, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"), [("0", Decimal("0")), ("0.00", Decimal("0.00"))]
)
def test_a_zero_price_is_a_price(value: str, expected: Decimal) -> None:
    """Zero is read (a one-sided quote sends it); only below zero is refused."""
    assert price(value, "p") == expected
    with pytest.raises(ValueError, match=r"p: '-0\.01' is negative"):
        price("-0.01", "p")
