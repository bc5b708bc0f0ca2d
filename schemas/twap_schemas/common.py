"""Enumerations and small types shared by every message of the wire contract."""

from __future__ import annotations

from enum import StrEnum

SCHEMA_VERSION = 1


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
    BLOCKED_RISK = "blocked_risk"  # a pre-trade risk limit refused it before the send


class ParentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELED = "canceled"


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
