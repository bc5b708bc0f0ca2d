"""A TWAP through RabbitMQ with TWAP_BROKER=alpaca: the real alpaca-py client against a local
stand-in of Alpaca's REST API, every slice arriving exactly once whatever the network does."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.alpaca_settings import STANDIN_KEY, STANDIN_SECRET, standin_broker_fields
from tests.support.alpaca_standin import AlpacaStandIn, Fault
from tests.support.harness import Harness, submit_body, worker_settings
from worker.brokers.factory import build_broker

pytest_plugins = ["tests.support.alpaca_fixtures"]


@pytest.fixture
async def alpaca_harness(
    amqp_url: str, sqlite_db: str, namespace: str, alpaca_standin: AlpacaStandIn
) -> AsyncIterator[Harness]:
    settings = worker_settings(amqp_url, sqlite_db, namespace,
                               **standin_broker_fields(alpaca_standin))
    h = Harness(settings, broker=build_broker(settings))
    await h.open()
    yield h
    await h.close()


async def run_twap(h: Harness, **overrides: Any) -> tuple[str, dict[str, Any]]:
    await h.start_worker()
    cid = await h.publish(submit_body(**overrides), reply=True)
    pid = (await h.reply_for(cid))["parent_order_id"]
    done = await h.events.wait_for(
        lambda: h.events.of("parent.completed", parent_order_id=pid), timeout=30)
    return pid, done[0]


def exactly_once(h: Harness, standin: AlpacaStandIn, pid: str) -> None:
    accepted = h.events.of("parent.accepted", parent_order_id=pid)[0]
    for planned in accepted["slices"]:
        booked = standin.orders_for(planned["client_order_id"])
        assert len(booked) == 1, f"slice {planned['slice_num']}: {len(booked)} orders at Alpaca"


async def test_every_slice_reaches_alpaca_exactly_once(
    alpaca_harness: Harness, alpaca_standin: AlpacaStandIn
) -> None:
    """A 4-slice limit TWAP: 4 orders at the stand-in, each with its client_order_id and price.
    The stand-in never fills a limit: each order is canceled at its slice's end (the last at
    the parent's), and the next slices catch up (10, 20, 20, 20 sent)."""
    pid, done = await run_twap(alpaca_harness, qty=40, duration_seconds=4, order_type="limit",
                               limit_price="150.25")
    assert done["by_status"] == {"closed": {"count": 4, "qty": 70}}
    assert (done["outcome"], done["filled_qty"]) == ("unfilled", 0)
    exactly_once(alpaca_harness, alpaca_standin, pid)
    assert {o["limit_price"] for o in alpaca_standin.orders.values()} == {"150.25"}


async def test_503_twice_then_success_is_one_order_after_three_attempts(
    alpaca_harness: Harness, alpaca_standin: AlpacaStandIn
) -> None:
    """Two 503s then success: one order at Alpaca, the slice submitted with attempts = 3."""
    alpaca_standin.fail_next(Fault(method="POST"), Fault(method="POST"))
    pid, _ = await run_twap(alpaca_harness, qty=5, duration_seconds=1)
    (event,) = alpaca_harness.events.of("slice.submitted", parent_order_id=pid)
    assert event["attempts"] == 3
    exactly_once(alpaca_harness, alpaca_standin, pid)


@pytest.mark.parametrize("status", [403, 422])
async def test_rejection_is_one_attempt(
    alpaca_harness: Harness, alpaca_standin: AlpacaStandIn, status: int
) -> None:
    """403 / 422: the slice is rejected with Alpaca's message after exactly one POST."""
    alpaca_standin.fail_next(Fault.http(status, "insufficient buying power", method="POST"))
    pid, done = await run_twap(alpaca_harness, qty=5, duration_seconds=1)
    (event,) = alpaca_harness.events.of("slice.rejected", parent_order_id=pid)
    assert event["attempts"] == 1 and "insufficient buying power" in event["reason"]
    assert alpaca_standin.count("POST") == 1 and not alpaca_standin.orders


async def test_429_waits_and_succeeds(
    alpaca_harness: Harness, alpaca_standin: AlpacaStandIn
) -> None:
    """A 429 is transient: the slice waits, retries and is submitted once."""
    alpaca_standin.fail_next(Fault.http(429, "rate limit exceeded", method="POST"))
    pid, done = await run_twap(alpaca_harness, qty=5, duration_seconds=1)
    assert done["by_status"]["filled"]["count"] == 1
    exactly_once(alpaca_harness, alpaca_standin, pid)


async def test_booked_but_answered_after_the_timeout_is_one_order(
    alpaca_harness: Harness, alpaca_standin: AlpacaStandIn
) -> None:
    """Alpaca books the order but answers after the client timeout: looked up, not resent."""
    alpaca_standin.fail_next(Fault.late(1.0, method="POST"))
    pid, done = await run_twap(alpaca_harness, qty=5, duration_seconds=1)
    assert done["by_status"]["filled"]["count"] == 1
    exactly_once(alpaca_harness, alpaca_standin, pid)
    assert alpaca_standin.count("POST") == 1


async def test_502_html_page_is_transient_and_never_crashes(
    alpaca_harness: Harness, alpaca_standin: AlpacaStandIn
) -> None:
    """A gateway's HTML error page is classified transient; the slice still goes out once."""
    alpaca_standin.fail_next(Fault.html(502, method="POST"))
    pid, done = await run_twap(alpaca_harness, qty=5, duration_seconds=1)
    assert done["by_status"]["filled"]["count"] == 1
    exactly_once(alpaca_harness, alpaca_standin, pid)


async def test_duplicate_client_order_id_is_submitted_not_rejected(
    alpaca_harness: Harness, alpaca_standin: AlpacaStandIn
) -> None:
    """Alpaca already has the order (422 'must be unique'): the slice is submitted with that
    order's id, not rejected, and no second order exists."""
    await alpaca_harness.start_worker()
    start = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    cid = await alpaca_harness.publish(submit_body(qty=5, duration_seconds=1, start_at=start),
                                       reply=True)
    reply = await alpaca_harness.reply_for(cid)
    client_order_id = reply["slices"][0]["client_order_id"]
    # Someone (a previous life of this worker) already placed it.
    request = urllib.request.Request(
        f"{alpaca_standin.url}/v2/orders", method="POST",
        data=json.dumps({"symbol": "AAPL", "qty": "5", "side": "buy", "type": "market",
                         "time_in_force": "day", "client_order_id": client_order_id}).encode(),
        headers={"Content-Type": "application/json", "APCA-API-KEY-ID": STANDIN_KEY,
                 "APCA-API-SECRET-KEY": STANDIN_SECRET})
    with urllib.request.urlopen(request, timeout=5) as answer:
        existing = json.loads(answer.read())["id"]
    pid = reply["parent_order_id"]
    await alpaca_harness.events.wait_for(
        lambda: alpaca_harness.events.of("parent.completed", parent_order_id=pid))
    (event,) = alpaca_harness.events.of("slice.submitted", parent_order_id=pid)
    assert event["broker_order_id"] == existing
    assert alpaca_standin.count("POST", "/v2/orders") == 2  # ours, then the worker's refused one
    assert len(alpaca_standin.orders_for(client_order_id)) == 1
    assert not alpaca_harness.events.of("slice.rejected")


async def test_cancel_working_orders_cancels_open_orders_at_alpaca(
    alpaca_harness: Harness, alpaca_standin: AlpacaStandIn
) -> None:
    """Resting limit orders of a canceled parent are canceled at Alpaca and counted."""
    await alpaca_harness.start_worker()
    cid = await alpaca_harness.publish(
        submit_body(qty=30, duration_seconds=6, interval_seconds=1, order_type="limit",
                    limit_price="10", slice_end="keep", keep_working_after_end=True),
        reply=True)
    pid = (await alpaca_harness.reply_for(cid))["parent_order_id"]
    await alpaca_harness.events.wait_for(
        lambda: len(alpaca_harness.events.of("slice.submitted", parent_order_id=pid)) >= 2)
    await alpaca_harness.publish({"type": "cancel", "parent_order_id": pid,
                                  "cancel_working_orders": True})
    (event,) = await alpaca_harness.events.wait_for(
        lambda: alpaca_harness.events.of("parent.canceled", parent_order_id=pid))
    canceled_at_alpaca = [o for o in alpaca_standin.orders.values() if o["status"] == "canceled"]
    # A slice in flight at the cancel is canceled as it lands, and not counted in the event.
    late = len(canceled_at_alpaca) - event["working_orders_canceled"]
    assert event["working_orders_canceled"] >= 2 and 0 <= late <= event["in_flight_slices"]
    assert event["canceled_slices"] >= 1
