"""Requests the benchmarks publish, and reading the plans the worker answers with."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def submit(
    run_id: str,
    number: int,
    *,
    start_at: float,
    slices: int = 30,
    interval: int = 60,
    qty: int | None = None,
) -> bytes:
    """A market TWAP of `slices` slices `interval` seconds apart, starting at `start_at`."""
    body: dict[str, Any] = {
        "type": "submit",
        "strategy_id": "bench",
        "symbol": "AAPL",
        "side": "buy",
        "qty": qty if qty is not None else slices * 100,
        "duration_seconds": slices * interval,
        "interval_seconds": interval,
        "start_at": rfc3339(start_at),
        "request_id": f"{run_id}-{number}",
    }
    return json.dumps(body).encode()


def cancel(parent_order_id: str) -> bytes:
    return json.dumps(
        {"type": "cancel", "parent_order_id": parent_order_id, "reason": "bench"}
    ).encode()


def planned_slices(accepted_body: bytes) -> tuple[str, dict[str, float]]:
    """(parent_order_id, {client_order_id: due time as epoch seconds}) of a parent.accepted."""
    event = json.loads(accepted_body)
    due = {
        s["client_order_id"]: datetime.fromisoformat(s["scheduled_time"]).timestamp()
        for s in event["slices"]
    }
    return event["parent_order_id"], due
