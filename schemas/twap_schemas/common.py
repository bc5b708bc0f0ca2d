"""Enumerations and small types shared by every message of the wire contract."""

from __future__ import annotations

from enum import StrEnum

SCHEMA_VERSION = 2


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class Distribution(StrEnum):
    FRONT_LOADED = "front_loaded"
    EVEN_RANDOM = "even_random"


class SliceStatus(StrEnum):
    SCHEDULED = "scheduled"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    BLOCKED_KILL_SWITCH = "blocked_kill_switch"
    BLOCKED_CIRCUIT_BREAKER = "blocked_circuit_breaker"
    CANCELED = "canceled"
    REJECTED = "rejected"
    FAILED = "failed"
    EXPIRED = "expired"
    FILLED = "filled"  # the broker filled the whole slice qty
    CLOSED = "closed"  # the order ended at the broker before it filled completely
    BLOCKED_RISK = "blocked_risk"  # a pre-trade risk limit refused it before the send


class SliceEnd(StrEnum):
    """What happens to a slice's order still working when the next slice comes due."""

    CANCEL = "cancel"
    KEEP = "keep"


class ExecutionOutcome(StrEnum):
    """How much of a completed parent executed."""

    FILLED = "filled"
    PARTIAL = "partial"
    UNFILLED = "unfilled"


class ParentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELED = "canceled"


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
