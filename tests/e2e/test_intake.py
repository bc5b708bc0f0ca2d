"""Request intake over real AMQP: validation, dead letters, duplicates, replies."""

from __future__ import annotations

import json

from tests.support.harness import Harness, submit_body


async def test_invalid_request_is_rejected_with_every_error_and_dead_lettered(
    harness: Harness,
) -> None:
    """A schema error: request.rejected lists every error, the reply too, and the untouched body
    lands in the DLQ with the reason in a header."""
    await harness.start_worker()
    raw = json.dumps(submit_body(side="hold", qty=0, limit_prce=1)).encode()
    cid = await harness.publish(raw, reply=True, message_id="m-1")
    reply = await harness.reply_for(cid)
    assert reply["outcome"] == "rejected"
    assert {e["loc"] for e in reply["errors"]} == {"side", "qty", "limit_prce"}
    rejected = await harness.events.wait_for(lambda: harness.events.of("request.rejected"))
    assert rejected[0]["message_id"] == "m-1" and rejected[0]["correlation_id"] == cid
    assert {e["loc"] for e in rejected[0]["errors"]} == {"side", "qty", "limit_prce"}
    (dead,) = await harness.dlq_messages(1)
    assert dead.body == raw
    assert dead.headers["x-twap-reason"] == "schema"
    assert "limit_prce" in str(dead.headers["x-twap-errors"])


async def test_garbage_never_stops_the_worker(harness: Harness) -> None:
    """Not JSON, not an object, unknown type, too large: each dead-lettered, then a valid
    request is still accepted."""
    await harness.start_worker()
    bodies = [b"\x00\xffnot json", b"[1,2,3]", b'{"type":"modify"}', b"{" + b" " * 70_000 + b"}"]
    for raw in bodies:
        await harness.publish(raw)
    cid = await harness.publish(submit_body(duration_seconds=1), reply=True)
    assert (await harness.reply_for(cid))["outcome"] == "accepted"
    dead = await harness.dlq_messages(4)
    assert sorted(m.body for m in dead) == sorted(bodies)
    reasons = sorted(str(m.headers["x-twap-reason"]) for m in dead)
    assert reasons == ["not_json", "not_object", "too_large", "unknown_type"]
    assert len(harness.events.of("request.rejected")) == 4


async def test_duplicate_submit_creates_nothing(harness: Harness) -> None:
    """The same submit twice: one parent, one set of orders, request.duplicate with its id."""
    await harness.start_worker()
    body = submit_body(duration_seconds=2)
    first = await harness.reply_for(await harness.publish(body, reply=True))
    second = await harness.reply_for(await harness.publish(body, reply=True))
    assert first["outcome"] == "accepted" and second["outcome"] == "duplicate"
    assert second["parent_order_id"] == first["parent_order_id"]
    dup = await harness.events.wait_for(lambda: harness.events.of("request.duplicate"))
    assert dup[0]["parent_order_id"] == first["parent_order_id"]
    await harness.events.wait_for(lambda: harness.events.of("parent.completed"))
    assert len(harness.events.of("parent.accepted")) == 1
    assert harness.broker.attempts == 2  # type: ignore[attr-defined]


async def test_plan_error_is_a_rejection_naming_the_field(harness: Harness) -> None:
    """qty below the slice count is rejected on `qty`, with the reason."""
    await harness.start_worker()
    cid = await harness.publish(submit_body(qty=3, duration_seconds=10, interval_seconds=1),
                                reply=True)
    reply = await harness.reply_for(cid)
    assert reply["outcome"] == "rejected"
    assert reply["errors"][0]["loc"] == "qty"
    assert "less than the slice count 10" in reply["errors"][0]["msg"]


async def test_accepted_reply_and_event_carry_the_plan(harness: Harness) -> None:
    """parent.accepted and the reply list every slice with its id, qty and due time."""
    await harness.start_worker()
    cid = await harness.publish(submit_body(qty=10, duration_seconds=3, interval_seconds=1,
                                            start_at=None), reply=True)
    reply = await harness.reply_for(cid)
    accepted = await harness.events.wait_for(lambda: harness.events.of("parent.accepted"))
    event = accepted[0]
    assert event["parent_order_id"] == reply["parent_order_id"]
    assert (event["total_qty"], event["total_slices"], event["interval_seconds"]) == (10, 3, 1)
    assert [s["qty"] for s in event["slices"]] == [4, 3, 3] == [s["qty"] for s in reply["slices"]]
    assert len({s["client_order_id"] for s in event["slices"]}) == 3
    assert event["schema_version"] == 2 and event["strategy_id"] == "alpha_1"


async def test_cancel_of_unknown_parent_is_rejected(harness: Harness) -> None:
    """Unknown parent → request.rejected naming parent_order_id."""
    await harness.start_worker()
    cid = await harness.publish({"type": "cancel", "parent_order_id": "nope"}, reply=True)
    reply = await harness.reply_for(cid)
    assert reply["outcome"] == "rejected" and reply["errors"][0]["loc"] == "parent_order_id"
    rejected = await harness.events.wait_for(lambda: harness.events.of("request.rejected"))
    assert rejected[0]["parent_order_id"] == "nope"
