"""The core's record types and the brokers' order views are frozen (a plan cannot change in
flight) and slotted (many live)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from twap_schemas import CancelRequest
from twap_schemas.common import (
    Distribution,
    OrderType,
    ParentStatus,
    Side,
    SliceStatus,
    TimeInForce,
)
from twap_schemas.numbers import Unrepresentable
from worker.brokers.orders import Lifecycle, OrderView
from worker.brokers.sim_market import Market, Quote, Step
from worker.core.events import EventParent
from worker.core.fills import Execution, Fill
from worker.core.guards import GuardState, Stop
from worker.core.intake import CancelOrder, Inbound, Invalid, PlannedSubmit
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord, SwitchState
from worker.core.slicing import SlicePlan

NOW = datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
PARENT = ParentRecord(
    parent_order_id="p1", strategy_id="alpha", symbol="AAPL", side=Side.BUY, qty=10,
    order_type=OrderType.MARKET, limit_price=Decimal("1"), stop_price=None,
    time_in_force=TimeInForce.DAY, duration_seconds=60, interval_seconds=60, max_slice_qty=None,
    distribution=Distribution.FRONT_LOADED, start_at=NOW, trade_date=date(2024, 5, 1),
    request_id=None, submitted_by=None, total_slices=1,
)
INBOUND = Inbound(b"{}")
RECORDS = [
    PARENT,
    SliceRecord("p1", 0, "c0", 10, NOW),
    OutboxMessage("events", "k", b""),
    SwitchState(False, None, False, None),
    SlicePlan(quantities=(10,), interval_seconds=60),
    EventParent("p1", "alpha", "AAPL", Side.BUY),
    INBOUND,
    PlannedSubmit(INBOUND, PARENT, []),
    CancelOrder(INBOUND, CancelRequest(type="cancel", parent_order_id="p1")),
    Invalid(INBOUND, "schema", []),
    GuardState(ParentStatus.ACTIVE, SliceStatus.SUBMITTING, SwitchState(False, None, False, None)),
    Stop(SliceStatus.CANCELED, "parent canceled"),
    Execution(1, Decimal("1")),
    Fill(1, Decimal("1"), Decimal("1"), Execution(1, Decimal("1"))),
    Quote(Decimal("1"), Decimal("1"), Decimal("1")),
    Step(),
    OrderView("c0", "b0", Lifecycle.WORKING, 0, None, NOW),
    Unrepresentable("1e99999999999999999999"),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_records_cannot_be_changed(record: object) -> None:
    """Assigning to any field of a record raises."""
    field = dataclasses.fields(record)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, None)


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_records_carry_no_instance_dict(record: object) -> None:
    """Records use __slots__: thousands of slices and messages are held at once."""
    assert not hasattr(record, "__dict__")


def test_the_sim_market_carries_no_instance_dict() -> None:
    """The sim market is slotted too (it changes: it keeps one random walk per symbol)."""
    assert not hasattr(Market(), "__dict__")


def test_invalid_has_no_strategy_unless_told() -> None:
    """An Invalid without a strategy hint routes nowhere in particular."""
    assert Invalid(INBOUND, "not_json", []).strategy_id is None
