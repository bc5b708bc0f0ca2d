"""Deterministic identifiers: the same plan always gets the same parent and child ids."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal

ID_LENGTH = 24


def normalize_price(price: Decimal | None) -> str:
    """`150`, `150.0` and `150.00` all give `150`; `150.004` stays `150.004`."""
    if price is None:
        return ""
    text = format(price.normalize(), "f")
    return text


def canonical_parent_text(
    *,
    strategy_id: str,
    symbol: str,
    side: str,
    qty: int,
    order_type: str,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
    time_in_force: str,
    duration_seconds: int,
    interval_seconds: int,
    max_slice_qty: int | None,
    distribution: str,
    start_at: datetime | None,
    trade_date: date,
    request_id: str | None,
    slice_end: str = "cancel",
    catch_up: bool = True,
    max_catch_up_ratio: Decimal = Decimal(2),
    keep_working_after_end: bool = False,
) -> str:
    """The text the parent id hashes: one `key=value` line per plan-defining field.

    The execution fields of contract v2 are written only when they differ from their defaults,
    so the id of every plan that leaves them alone is the one it had before they existed.
    """
    fields: list[tuple[str, str]] = [
        ("strategy_id", strategy_id),
        ("symbol", symbol.upper()),
        ("side", side),
        ("qty", str(qty)),
        ("order_type", order_type),
        ("limit_price", normalize_price(limit_price)),
        ("stop_price", normalize_price(stop_price)),
        ("time_in_force", time_in_force),
        ("duration_seconds", str(duration_seconds)),
        ("interval_seconds", str(interval_seconds)),
        ("max_slice_qty", "" if max_slice_qty is None else str(max_slice_qty)),
        ("distribution", distribution),
    ]
    if start_at is not None:
        fields.append(("start_at", start_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")))
    fields.append(("trade_date", trade_date.isoformat()))
    if request_id is not None:
        fields.append(("request_id", request_id))
    if slice_end != "cancel":
        fields.append(("slice_end", slice_end))
    if not catch_up:
        fields.append(("catch_up", "false"))
    if max_catch_up_ratio != 2:
        fields.append(("max_catch_up_ratio", normalize_price(max_catch_up_ratio)))
    if keep_working_after_end:
        fields.append(("keep_working_after_end", "true"))
    return "\n".join(f"{key}={value}" for key, value in fields)


def parent_order_id(canonical_text: str) -> str:
    """First 24 hex characters of SHA-256 over the canonical text."""
    return hashlib.sha256(canonical_text.encode("utf-8")).hexdigest()[:ID_LENGTH]


def client_order_id(parent_id: str, slice_num: int) -> str:
    """The broker-facing id of one slice: a retry can never create a second order."""
    return hashlib.sha256(f"{parent_id}:{slice_num}".encode()).hexdigest()[:ID_LENGTH]


def client_order_ids(parent_id: str, count: int) -> list[str]:
    """`client_order_id` of slices 0 … count-1: the shared prefix is hashed once."""
    prefix = hashlib.sha256(f"{parent_id}:".encode())
    out = []
    for num in range(count):
        digest = prefix.copy()
        digest.update(str(num).encode())
        out.append(digest.hexdigest()[:ID_LENGTH])
    return out
