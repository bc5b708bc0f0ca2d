"""Alpaca's order JSON (a REST answer or the order inside a trade update) read into the
worker's OrderView.

Pure: no alpaca-py import. Quantities and prices come from Alpaca's decimal strings, exactly;
times are aware UTC. A field that cannot be read raises ValueError naming it; the adapter
decides what that means (a REST answer that is not an order, a stream update to reconcile).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.brokers.alpaca_status import close_reason, event_lifecycle, order_lifecycle
from worker.brokers.orders import Lifecycle, OrderView

# The order's own times, most telling first: the last change, then the moments it reached.
_TIMES = ("updated_at", "filled_at", "canceled_at", "expired_at", "submitted_at", "created_at")


def order_view(raw: Any, *, event: str | None = None, at: Any = None) -> OrderView:
    """The OrderView of Alpaca's order JSON; `event` (a trade update's) decides the lifecycle
    when given, else the order's status; `at` (the update's timestamp) overrides its times."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"order: expected an object, got {type(raw).__name__}")
    broker_order_id = _required_text(raw, "id")
    client_order_id = _required_text(raw, "client_order_id")
    status = _required_text(raw, "status")
    lifecycle = order_lifecycle(status) if event is None else event_lifecycle(event, status)
    filled_qty = whole_qty(raw.get("filled_qty"), "filled_qty")
    avg = price(raw.get("filled_avg_price"), "filled_avg_price")
    if filled_qty == 0:
        avg = None  # Alpaca may send "0" or a stale figure before anything filled
    elif avg is None:
        raise ValueError(f"filled_avg_price: missing while filled_qty is {filled_qty}")
    reason = None
    if lifecycle is Lifecycle.CLOSED:
        reason = close_reason(event if event is not None else status)
    return OrderView(
        client_order_id=client_order_id,
        broker_order_id=broker_order_id,
        lifecycle=lifecycle,
        filled_qty=filled_qty,
        avg_fill_price=avg,
        at=_when(at, raw),
        reason=reason,
    )


def whole_qty(value: Any, name: str) -> int:
    """A quantity that must be a whole number of shares (the worker sends whole shares)."""
    if value is None or value == "":
        return 0
    number = _decimal(value, name)
    if number < 0 or number != number.to_integral_value():
        raise ValueError(f"{name}: {value!r} is not a whole, non-negative number of shares")
    return int(number)


def price(value: Any, name: str) -> Decimal | None:
    """A price as an exact Decimal from Alpaca's string; None when absent."""
    if value is None or value == "":
        return None
    number = _decimal(value, name)
    if number < 0:
        raise ValueError(f"{name}: {value!r} is negative")
    return number


def timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from Alpaca's RFC 3339 text (a naive one is taken as UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _when(at: Any, raw: Mapping[str, Any]) -> datetime:
    for value in (at, *(raw.get(name) for name in _TIMES)):
        moment = timestamp(value)
        if moment is not None:
            return moment
    raise ValueError(f"order: none of {', '.join(_TIMES)} is a time")


def _required_text(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: missing or not text")
    return value


def _decimal(value: Any, name: str) -> Decimal:
    # Alpaca sends decimal strings; a JSON number is read through its shortest text form.
    text = value if isinstance(value, str) else repr(value)  # True reads "True": refused
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{name}: {value!r} is not a finite number")
    return number
