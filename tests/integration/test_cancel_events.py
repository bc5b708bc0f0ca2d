"""A cancel's events: parent.canceled first, then one slice.canceled per pending slice, all after
the parent.accepted of a submit earlier in the same batch."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from twap_schemas.requests import RequestContext
from worker.core import events
from worker.core.intake import Inbound, classify
from worker.store.repository import Store

pytestmark = pytest.mark.integration


async def test_submit_then_cancel_in_one_batch_keeps_request_order(store: Store) -> None:
    """accepted, then canceled, then the 20 slice events; the cancel reply counts them."""
    now = datetime.now(UTC)
    start = (now + timedelta(hours=1)).isoformat()
    submit = {
        "type": "submit",
        "strategy_id": "s",
        "symbol": "AAPL",
        "side": "buy",
        "qty": 200,
        "duration_seconds": 20,
        "interval_seconds": 1,
        "start_at": start,
        "request_id": uuid.uuid4().hex,
    }
    context = RequestContext(now=now)
    first = classify(Inbound(json.dumps(submit).encode()), context, now)
    pid = first.parent.parent_order_id  # type: ignore[union-attr]
    cancel = classify(
        Inbound(
            json.dumps({"type": "cancel", "parent_order_id": pid}).encode(),
            reply_to="replies",
            correlation_id="c-1",
        ),
        context,
        now,
    )
    results = await store.apply_intake([first, cancel], now, "q.requests")
    assert [r.outcome for r in results] == ["accepted", "canceled"]
    rows = await store.outbox_fetch(1000)
    assert len(rows) == 4  # the twenty slice events ride in one row
    types = [m.type for _, row in rows for m in events.expand(row)]
    assert types == [
        "parent.accepted",
        "parent.canceled",
        *["slice.canceled"] * 20,
        "reply.accepted",
    ]
    announced = json.loads((await store.outbox_fetch(2))[1][1].body)
    assert (announced["canceled_slices"], announced["in_flight_slices"]) == (20, 0)
