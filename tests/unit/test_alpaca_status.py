"""Alpaca's order statuses mapped to the lifecycle (unknown strings never raise), and the
lifecycle itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.brokers.alpaca_status import (
    TRADE_EVENT,
    close_reason,
    event_lifecycle,
    is_known_event,
    order_lifecycle,
)
from worker.brokers.orders import Lifecycle, OrderView

W, F, C = Lifecycle.WORKING, Lifecycle.FILLED, Lifecycle.CLOSED

TABLE = [
    ("new", W),
    ("accepted", W),
    ("pending_new", W),
    ("accepted_for_bidding", W),
    ("partially_filled", W),
    ("pending_cancel", W),
    ("pending_replace", W),
    ("pending_review", W),
    ("held", W),
    ("calculated", W),
    ("stopped", W),
    ("suspended", W),
    ("filled", F),
    ("canceled", C),
    ("expired", C),
    ("done_for_day", C),
    ("rejected", C),
    ("replaced", C),
]


@pytest.mark.parametrize(("status", "expected"), TABLE)
def test_every_alpaca_status_has_its_place(status: str, expected: Lifecycle) -> None:
    """Each documented Alpaca order status maps as written in this table."""
    assert order_lifecycle(status) is expected


def test_case_and_spaces_do_not_matter() -> None:
    """` Filled ` is filled."""
    assert order_lifecycle(" Filled ") is F


@pytest.mark.parametrize("status", ["", "teleported", "order_cancel_rejected"])
def test_unknown_strings_are_unknown(status: str) -> None:
    """A status not in the table is UNKNOWN, for the caller to look up."""
    assert order_lifecycle(status) is Lifecycle.UNKNOWN


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("canceled", "canceled at the broker"),
        ("expired", "expired at the broker"),
        ("done_for_day", "done for day at the broker"),
        ("rejected", "rejected by the broker after it was accepted"),
        ("replaced", "replaced at the broker by another order"),
        ("weird", "ended at the broker (weird)"),
    ],
)
def test_close_reasons(status: str, reason: str) -> None:
    """Every closing status has a reason a trader can read."""
    assert close_reason(status) == reason


def test_lifecycle_names_print_as_written() -> None:
    """Each lifecycle prints as its lower-case name (what logs and status lines show)."""
    assert [str(m) for m in Lifecycle] == ["working", "filled", "closed", "unknown"]


@pytest.mark.parametrize(
    ("lifecycle", "ended"),
    [(Lifecycle.WORKING, False), (F, True), (C, True), (Lifecycle.UNKNOWN, False)],
)
def test_only_filled_and_closed_orders_have_ended(lifecycle: Lifecycle, ended: bool) -> None:
    """An order view has ended when filled or closed; working and unknown have not."""
    view = OrderView("c0", "b0", lifecycle, 0, None, datetime(2026, 12, 1, tzinfo=UTC))
    assert view.ended is ended


# Every trade event of the `trade_updates` stream; for the events that do not say where the
# order is, the order's status (second column) decides, so the expectation follows it.
EVENT_TABLE = [
    ("new", "new", W),
    ("accepted", "accepted", W),
    ("pending_new", "pending_new", W),
    ("partial_fill", "partially_filled", W),
    ("pending_cancel", "pending_cancel", W),
    ("pending_replace", "pending_replace", W),
    ("calculated", "calculated", W),
    ("suspended", "suspended", W),
    ("held", "held", W),
    ("fill", "filled", F),
    ("canceled", "canceled", C),
    ("expired", "expired", C),
    ("done_for_day", "done_for_day", C),
    ("rejected", "rejected", C),
    ("replaced", "replaced", C),
    ("order_cancel_rejected", "filled", F),
    ("order_cancel_rejected", "partially_filled", W),
    ("order_replace_rejected", "new", W),
    ("restated", "canceled", C),
    ("restated", "mystery", Lifecycle.UNKNOWN),
    ("margin_called", "new", Lifecycle.UNKNOWN),
    ("", "filled", Lifecycle.UNKNOWN),
]


@pytest.mark.parametrize(("event", "status", "expected"), EVENT_TABLE)
def test_every_trade_event_has_its_place(event: str, status: str, expected: Lifecycle) -> None:
    """Each trade event maps as written; unknown events are UNKNOWN whatever the status."""
    assert event_lifecycle(event, status) is expected


def test_an_event_that_says_where_the_order_is_wins_over_a_stale_status() -> None:
    """`fill` is FILLED and `canceled` CLOSED even if the order's status lags behind."""
    assert event_lifecycle("fill", "partially_filled") is F
    assert event_lifecycle("canceled", "new") is C
    assert event_lifecycle(" FILL ", "new") is F


@pytest.mark.parametrize(
    ("event", "known"), [("fill", True), ("Done_For_Day", True), ("margin_called", False)]
)
def test_known_events(event: str, known: bool) -> None:
    """is_known_event: the table's events, any case."""
    assert is_known_event(event) is known


def test_every_event_alpaca_py_names_is_in_the_table() -> None:
    """alpaca-py's TradeEvent enum has no event this table misses."""
    from tests.support.alpaca_imports import trade_events

    assert set(trade_events()) - set(TRADE_EVENT) == set()
