"""From a validated submit request to the parent and slice records to persist."""

from __future__ import annotations

from datetime import UTC, datetime

from twap_schemas.common import Distribution
from twap_schemas.requests import SubmitRequest
from worker.core import ids, slicing
from worker.core.records import ParentRecord, SliceRecord


def build_plan(
    request: SubmitRequest,
    *,
    now: datetime,
    received_at: datetime | None = None,
    max_slices: int | None = None,
    submitted_by: str | None = None,
) -> tuple[ParentRecord, list[SliceRecord]]:
    """Plan a parent: deterministic id, slice quantities and due times. Raises PlanError.

    The default trade date is the UTC date of `start_at` when given, else of `received_at`
    (when the request was received; default `now`): a stable time, so the same message
    planned again after midnight keeps its date and therefore its parent id.
    """
    start = (request.start_at or now).astimezone(UTC)
    trade_date = request.trade_date or (
        start.date() if request.start_at else (received_at or now).astimezone(UTC).date()
    )
    duration = request.duration
    canonical = ids.canonical_parent_text(
        strategy_id=request.strategy_id,
        symbol=request.symbol,
        side=request.side.value,
        qty=request.qty,
        order_type=request.order_type.value,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
        time_in_force=request.time_in_force.value,
        duration_seconds=duration,
        interval_seconds=request.interval_seconds,
        max_slice_qty=request.max_slice_qty,
        distribution=request.distribution.value,
        start_at=request.start_at,
        trade_date=trade_date,
        request_id=request.request_id,
        slice_end=request.slice_end.value,
        catch_up=request.catch_up,
        max_catch_up_ratio=request.max_catch_up_ratio,
        keep_working_after_end=request.keep_working_after_end,
    )
    parent_id = ids.parent_order_id(canonical)
    plan = slicing.plan(
        qty=request.qty,
        duration_seconds=duration,
        interval_seconds=request.interval_seconds,
        max_slice_qty=request.max_slice_qty,
        even_random=request.distribution is Distribution.EVEN_RANDOM,
        seed=parent_id,
        max_slices=max_slices,
    )
    parent = ParentRecord(
        parent_order_id=parent_id,
        strategy_id=request.strategy_id,
        symbol=request.symbol,
        side=request.side,
        qty=request.qty,
        order_type=request.order_type,
        limit_price=request.limit_price,
        stop_price=request.stop_price,
        time_in_force=request.time_in_force,
        duration_seconds=duration,
        interval_seconds=plan.interval_seconds,
        max_slice_qty=request.max_slice_qty,
        distribution=request.distribution,
        start_at=start,
        trade_date=trade_date,
        request_id=request.request_id,
        submitted_by=submitted_by,
        total_slices=plan.count,
        created_at=now,
        slice_end=request.slice_end,
        catch_up=request.catch_up,
        max_catch_up_ratio=request.max_catch_up_ratio,
        keep_working_after_end=request.keep_working_after_end,
    )
    child_ids = ids.client_order_ids(parent_id, plan.count)
    slices = [
        SliceRecord(
            parent_order_id=parent_id,
            slice_num=num,
            client_order_id=child_ids[num],
            qty=qty,
            scheduled_time=plan.due_time(start, num),
        )
        for num, qty in enumerate(plan.quantities)
    ]
    return parent, slices
