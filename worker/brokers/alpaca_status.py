"""Alpaca's order statuses and trade events, mapped to the worker's order lifecycle.

Kept apart from the adapter so the table is pure and tested on its own: an unknown string
maps to UNKNOWN (logged and reconciled by the caller), never to an exception.
"""

from __future__ import annotations

from worker.brokers.orders import Lifecycle

ORDER_STATUS: dict[str, Lifecycle] = {
    "new": Lifecycle.WORKING,
    "accepted": Lifecycle.WORKING,
    "pending_new": Lifecycle.WORKING,
    "accepted_for_bidding": Lifecycle.WORKING,
    "partially_filled": Lifecycle.WORKING,
    # A cancel or replace asked for is not done until the broker says so: it may still fill.
    "pending_cancel": Lifecycle.WORKING,
    "pending_replace": Lifecycle.WORKING,
    "pending_review": Lifecycle.WORKING,
    "held": Lifecycle.WORKING,
    "calculated": Lifecycle.WORKING,
    "stopped": Lifecycle.WORKING,
    "suspended": Lifecycle.WORKING,
    "filled": Lifecycle.FILLED,
    "canceled": Lifecycle.CLOSED,
    "expired": Lifecycle.CLOSED,
    "done_for_day": Lifecycle.CLOSED,
    "rejected": Lifecycle.CLOSED,
    # The worker never replaces orders: a replacement was made elsewhere and this order ended.
    "replaced": Lifecycle.CLOSED,
}

CLOSE_REASON: dict[str, str] = {
    "canceled": "canceled at the broker",
    "expired": "expired at the broker",
    "done_for_day": "done for day at the broker",
    "rejected": "rejected by the broker after it was accepted",
    "replaced": "replaced at the broker by another order",
}


def order_lifecycle(status: str) -> Lifecycle:
    """Where an Alpaca order status puts a slice's order; UNKNOWN for a string not listed."""
    return ORDER_STATUS.get(status.strip().lower(), Lifecycle.UNKNOWN)


def close_reason(status: str) -> str:
    return CLOSE_REASON.get(status.strip().lower(), f"ended at the broker ({status})")


# Trade events of the `trade_updates` stream. An event that says where the order now is maps
# to that lifecycle; None means the event reports something else (a refused cancel, a
# restatement) and the order's own status, sent with the event, decides.
TRADE_EVENT: dict[str, Lifecycle | None] = {
    "new": Lifecycle.WORKING,
    "accepted": Lifecycle.WORKING,
    "pending_new": Lifecycle.WORKING,
    "partial_fill": Lifecycle.WORKING,
    "pending_cancel": Lifecycle.WORKING,
    "pending_replace": Lifecycle.WORKING,
    "calculated": Lifecycle.WORKING,
    "suspended": Lifecycle.WORKING,
    "held": Lifecycle.WORKING,
    "fill": Lifecycle.FILLED,
    "canceled": Lifecycle.CLOSED,
    "expired": Lifecycle.CLOSED,
    "done_for_day": Lifecycle.CLOSED,
    "rejected": Lifecycle.CLOSED,
    "replaced": Lifecycle.CLOSED,
    # A refused cancel usually means the order filled meanwhile: its status says.
    "order_cancel_rejected": None,
    "order_replace_rejected": None,
    "restated": None,
}


def is_known_event(event: str) -> bool:
    return event.strip().lower() in TRADE_EVENT


def event_lifecycle(event: str, order_status: str) -> Lifecycle:
    """Where a trade update puts the order; UNKNOWN for an event not listed (the caller logs
    it and the consumer looks the order up)."""
    key = event.strip().lower()
    if key not in TRADE_EVENT:
        return Lifecycle.UNKNOWN
    decided = TRADE_EVENT[key]
    return decided if decided is not None else order_lifecycle(order_status)
