"""Conversions between table rows and the core's records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Row

from twap_schemas.common import (
    Distribution,
    OrderType,
    ParentStatus,
    Side,
    SliceStatus,
    TimeInForce,
)
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord


def parent_values(parent: ParentRecord, now: datetime) -> dict[str, Any]:
    return {
        "parent_order_id": parent.parent_order_id,
        "strategy_id": parent.strategy_id,
        "symbol": parent.symbol,
        "side": parent.side.value,
        "qty": parent.qty,
        "order_type": parent.order_type.value,
        "limit_price": parent.limit_price,
        "stop_price": parent.stop_price,
        "time_in_force": parent.time_in_force.value,
        "duration_seconds": parent.duration_seconds,
        "interval_seconds": parent.interval_seconds,
        "max_slice_qty": parent.max_slice_qty,
        "distribution": parent.distribution.value,
        "start_at": parent.start_at,
        "trade_date": parent.trade_date.isoformat(),
        "request_id": parent.request_id,
        "submitted_by": parent.submitted_by,
        "total_slices": parent.total_slices,
        "open_slices": parent.total_slices if parent.status is ParentStatus.ACTIVE else 0,
        "status": parent.status.value,
        "created_at": parent.created_at or now,
        "updated_at": now,
    }


SLICE_COLUMNS = (
    "parent_order_id", "slice_num", "client_order_id", "qty", "scheduled_time", "status",
    "broker_order_id", "attempts", "reason", "sent_at", "updated_at",
)


# A slice as planned has no broker id, reason or send time yet: those columns stay NULL and
# out of the COPY (a third less for the driver to encode on the intake's hot path).
PLANNED_SLICE_COLUMNS = (
    "parent_order_id", "slice_num", "client_order_id", "qty", "scheduled_time", "status",
    "attempts", "updated_at",
)


def planned_slice_tuple(record: SliceRecord, now: datetime) -> tuple[Any, ...] | None:
    """A slice's row in PLANNED_SLICE_COLUMNS order; None if it has more to say."""
    if record.broker_order_id is not None or record.reason is not None or record.sent_at:
        return None
    return (
        record.parent_order_id, record.slice_num, record.client_order_id, record.qty,
        record.scheduled_time, record.status.value, record.attempts, now,
    )


def slice_tuple(record: SliceRecord, now: datetime) -> tuple[Any, ...]:
    """A slice's row as values in SLICE_COLUMNS order (bulk inserts take these)."""
    return (
        record.parent_order_id, record.slice_num, record.client_order_id, record.qty,
        record.scheduled_time, record.status.value, record.broker_order_id, record.attempts,
        record.reason, record.sent_at, now,
    )


def outbox_values(message: OutboxMessage, now: datetime) -> dict[str, Any]:
    return {
        "exchange": message.exchange,
        "routing_key": message.routing_key,
        "message_id": message.message_id,
        "type": message.type,
        "correlation_id": message.correlation_id,
        "parent_order_id": message.parent_order_id,
        "headers": message.headers or None,
        "body": message.body,
        "created_at": now,
    }


def to_parent(row: Row[Any] | Any, prefix: str = "") -> ParentRecord:
    m = _Prefixed(row._mapping, prefix) if prefix else row._mapping
    return ParentRecord(
        parent_order_id=m["parent_order_id"],
        strategy_id=m["strategy_id"],
        symbol=m["symbol"],
        side=Side(m["side"]),
        qty=m["qty"],
        order_type=OrderType(m["order_type"]),
        limit_price=m["limit_price"],
        stop_price=m["stop_price"],
        time_in_force=TimeInForce(m["time_in_force"]),
        duration_seconds=m["duration_seconds"],
        interval_seconds=m["interval_seconds"],
        max_slice_qty=m["max_slice_qty"],
        distribution=Distribution(m["distribution"]),
        start_at=m["start_at"],
        trade_date=date.fromisoformat(m["trade_date"]),
        request_id=m["request_id"],
        submitted_by=m["submitted_by"],
        total_slices=m["total_slices"],
        status=ParentStatus(m["status"]),
        created_at=m["created_at"],
    )


def to_slice(row: Row[Any] | Any) -> SliceRecord:
    m = row._mapping
    return SliceRecord(
        parent_order_id=m["parent_order_id"],
        slice_num=m["slice_num"],
        client_order_id=m["client_order_id"],
        qty=m["qty"],
        scheduled_time=m["scheduled_time"],
        status=SliceStatus(m["status"]),
        broker_order_id=m["broker_order_id"],
        attempts=m["attempts"],
        reason=m["reason"],
        sent_at=m["sent_at"],
    )


def to_outbox(row: Row[Any] | Any) -> OutboxMessage:
    m = row._mapping
    return OutboxMessage(
        exchange=m["exchange"],
        routing_key=m["routing_key"],
        body=bytes(m["body"]),
        message_id=m["message_id"],
        type=m["type"],
        correlation_id=m["correlation_id"],
        parent_order_id=m["parent_order_id"],
        headers=dict(m["headers"] or {}),
    )


class _Prefixed:
    """Read a joined row's parent columns, labelled `p_<name>` to avoid clashing names."""

    def __init__(self, mapping: Any, prefix: str) -> None:
        self.mapping = mapping
        self.prefix = prefix

    def __getitem__(self, key: str) -> Any:
        return self.mapping[self.prefix + key]
