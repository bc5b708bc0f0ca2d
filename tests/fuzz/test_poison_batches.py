"""Poisoned messages against a running worker over real RabbitMQ, on both databases: a bad
value never costs its batch neighbours, and never holds up the control command behind it."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.harness import Harness, submit_body
from worker.core import intake as core_intake

pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(120)]

# Long enough that a requeued batch would miss every wait below: only an answer at the first
# attempt passes.
SLOW_REQUEUE = 30.0
BIG = "1e99999999999999999999"


def _poison(start_at: str) -> list[bytes]:
    ok = json.dumps(submit_body(start_at=start_at))[:-1]
    return [
        (ok + ', "max_slice_qty": ' + BIG + "}").encode(),
        json.dumps(submit_body(start_at="0001-01-01T00:00:00+01:00")).encode(),
        json.dumps(submit_body(start_at="9999-12-31T23:59:59-01:00")).encode(),
        json.dumps(submit_body(start_at=start_at, interval_seconds=2**31)).encode(),
        json.dumps(submit_body(start_at=start_at, interval_seconds=10**12)).encode(),
        json.dumps(submit_body(start_at=start_at, request_id="r\u0000")).encode(),
        json.dumps({"type": "cancel", "parent_order_id": "f" * 30}).encode(),
    ]


async def test_poisoned_values_batched_with_valid_submits_cost_no_neighbour(
    harness: Harness,
) -> None:
    """60 valid submits and the values that used to poison a batch, published together: every
    valid one accepted, every bad one rejected with a reply and dead-lettered as `schema` or
    `plan`, all at the first attempt."""
    start_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    valid = [await harness.publish(submit_body(start_at=start_at), reply=True) for _ in range(60)]
    poison = [await harness.publish(raw, reply=True) for raw in _poison(start_at)]
    # An invalid request whose AMQP message_id is longer than the column that records it.
    poison.append(await harness.publish(submit_body(qty=0), reply=True, message_id="m" * 100))
    await harness.start_worker(requeue_delay_seconds=SLOW_REQUEUE, batch_size=128)
    outcomes = [(await harness.reply_for(c))["outcome"] for c in valid]
    assert outcomes == ["accepted"] * 60
    for cid in poison:
        reply = await harness.reply_for(cid)
        assert reply["outcome"] == "rejected" and reply["errors"], reply
    dead = await harness.dlq_messages(len(poison))
    assert sorted(str(m.headers.get("x-twap-reason")) for m in dead) == sorted(
        ["schema"] * 6 + ["plan"] * 2), [m.headers for m in dead]
    long_id = [m for m in dead if m.message_id and m.message_id.startswith("m")]
    assert [m.message_id for m in long_id] == ["m" * 64]


async def test_kill_switch_behind_a_bad_control_value_is_applied_at_once(
    harness: Harness,
) -> None:
    """A control message with an unrepresentable number is refused at its first attempt; the
    kill switch published right behind it is applied without waiting on it."""
    bad = ('{"type": "kill_switch.engage", "reason": "x", "operator": ' + BIG + "}").encode()
    await harness.publish(bad, queue=harness.names.control)
    await harness.control("kill_switch.engage", reason="behind the bad one")
    await harness.start_worker(requeue_delay_seconds=SLOW_REQUEUE)
    engaged = await harness.events.wait_for(
        lambda: harness.events.of("control.kill_switch.engaged"))
    assert engaged[0]["reason"] == "behind the bad one"
    (dead,) = await harness.dlq_messages(1)
    assert dead.body == bad and dead.headers["x-twap-reason"] == "schema"


async def test_control_command_the_handler_fails_on_is_dead_lettered_after_one_attempt(
    harness: Harness,
) -> None:
    """A control command whose handling fails (not an outage) is dead-lettered after that one
    attempt, so the kill switch behind it is applied at once."""
    worker = await harness.start_worker(requeue_delay_seconds=SLOW_REQUEUE)
    handle = worker.control.handle
    attempts: list[bytes] = []

    async def failing(body: bytes, message_id: str | None, correlation_id: str | None,
                      user_id: str | None = None) -> Any:
        if b"explode" in body:
            attempts.append(body)
            raise RuntimeError("injected failure")
        return await handle(body, message_id, correlation_id, user_id)

    worker.control_consumer.handler = failing
    await harness.control("breaker.trip", reason="explode")
    await harness.control("kill_switch.engage", reason="right behind")
    await harness.events.wait_for(lambda: harness.events.of("control.kill_switch.engaged"))
    (dead,) = await harness.dlq_messages(1)
    assert b"explode" in dead.body and len(attempts) == 1
    assert not harness.events.of("control.breaker.tripped")


async def test_batch_whose_preparation_crashes_is_split_not_requeued_whole(
    harness: Harness, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When preparing a batch raises because of one message, the batch is split: every other
    message is answered at once, only that one is requeued."""
    start_at = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    classify = core_intake.classify

    def crashing(inbound: Any, context: Any, now: Any, **kwargs: Any) -> Any:
        if b"explode" in inbound.body:
            raise RuntimeError("injected failure")
        return classify(inbound, context, now, **kwargs)

    monkeypatch.setattr("worker.runtime.intake.classify", crashing)
    valid = [await harness.publish(submit_body(start_at=start_at), reply=True) for _ in range(30)]
    await harness.publish(submit_body(start_at=start_at, request_id="explode"), reply=True)
    valid += [await harness.publish(submit_body(start_at=start_at), reply=True) for _ in range(30)]
    await harness.start_worker(requeue_delay_seconds=0.5, batch_size=128)
    outcomes = await asyncio.gather(*(harness.reply_for(c) for c in valid))
    assert [o["outcome"] for o in outcomes] == ["accepted"] * 60
