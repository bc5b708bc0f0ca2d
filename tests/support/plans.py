"""Parents written straight into a store, as intake would have written them (no worker)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from twap_schemas import RequestContext, SubmitRequest, parse_request
from worker.core.planning import build_plan
from worker.core.records import ParentRecord, SliceRecord
from worker.store.repository import Store


async def stored_parent(store: Store, start: datetime, **fields: Any
                        ) -> tuple[ParentRecord, list[SliceRecord]]:
    """A parent of one 5-share slice starting at `start` (override any submit field), stored."""
    body = {"type": "submit", "strategy_id": "x", "symbol": "AAPL", "side": "buy", "qty": 5,
            "duration_seconds": 1, "interval_seconds": 1, "start_at": start.isoformat(),
            "request_id": uuid.uuid4().hex, **fields}
    request = parse_request(json.dumps(body).encode(), RequestContext(now=start))
    assert isinstance(request, SubmitRequest), request
    parent, plan = build_plan(request, now=start)
    await store.create_parent(parent, plan, start)
    return parent, plan
