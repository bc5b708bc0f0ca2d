"""`twap dlq`: dead letters with both kinds of reason, replay after confirm, purge."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.cli.conftest import Cli, depth
from tests.support.harness import Harness, submit_body


async def until_depth(harness: Harness, queue: str, expected: int) -> None:
    """Wait for a queue depth (RabbitMQ has no event for it: a short poll)."""

    async def loop() -> None:
        while await depth(harness, queue) != expected:  # noqa: ASYNC110 (no event exists)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), 15)


async def rejected_by_worker(harness: Harness, body: dict[str, Any], message_id: str) -> None:
    """Publish a bad request to a running worker and wait until it sits in the DLQ."""
    await harness.publish(body, message_id=message_id)
    await harness.events.wait_for(
        lambda: harness.events.of("request.rejected", message_id=message_id)
    )
    await until_depth(harness, harness.names.dlq, 1)


async def poisoned(harness: Harness, message_id: str) -> None:
    """A request redelivered past x-delivery-limit: RabbitMQ dead-letters it (x-death)."""
    await harness.publish(submit_body(), message_id=message_id)
    assert harness.channel is not None
    queue = await harness.channel.get_queue(harness.names.requests)
    while await depth(harness, harness.names.dlq) == 0:
        message = await queue.get(no_ack=False, fail=False)
        if message is not None:
            await message.nack(requeue=True)


async def test_list_and_show_give_the_workers_reason(harness: Harness, cli: Cli) -> None:
    """A request the worker rejected is listed with its reason and shown with its body."""
    await harness.start_worker()
    await rejected_by_worker(harness, submit_body(limit_prce="1"), "m-typo")
    [letter] = await cli.json("dlq", "list")
    assert (letter["position"], letter["message_id"], letter["reason"], letter["by"]) == (
        1,
        "m-typo",
        "schema",
        "worker",
    )
    assert "limit_prce: unknown field" in letter["detail"]
    assert letter["source_queue"] == harness.names.requests
    shown = await cli("dlq", "show", "m-typo")
    assert shown.exit_code == 0, shown.output
    assert '"limit_prce": "1"' in shown.stdout
    assert ["reason:", "schema"] in [line.split() for line in shown.stdout.splitlines()]
    assert await depth(harness, harness.names.dlq) == 1  # browsing removes nothing


async def test_list_gives_rabbitmqs_reason_for_a_poison_message(harness: Harness, cli: Cli) -> None:
    """A message dead-lettered by RabbitMQ shows its x-death reason (delivery_limit)."""
    await poisoned(harness, "m-poison")
    [letter] = await cli.json("dlq", "list")
    assert (letter["message_id"], letter["reason"], letter["by"]) == (
        "m-poison",
        "delivery_limit",
        "rabbitmq",
    )
    assert letter["source_queue"] == harness.names.requests
    assert letter["died_at"] is not None


async def test_replay_moves_it_back_without_death_headers(harness: Harness, cli: Cli) -> None:
    """replay republishes body and properties to N.requests and removes it from the DLQ."""
    await poisoned(harness, "m-back")
    result = await cli("dlq", "replay", "1")
    assert result.exit_code == 0, result.output
    assert "replayed" in result.stdout
    assert await depth(harness, harness.names.dlq) == 0
    assert harness.channel is not None
    queue = await harness.channel.get_queue(harness.names.requests)
    message = await queue.get(no_ack=True)
    assert message.message_id == "m-back"
    assert json.loads(message.body)["type"] == "submit"
    assert not any(
        k.startswith(("x-death", "x-first-death", "x-twap")) for k in (message.headers or {})
    )


async def test_replay_dry_run_moves_nothing(harness: Harness, cli: Cli) -> None:
    """--dry-run lists what would go where and leaves the dead letter in place."""
    await poisoned(harness, "m-dry")
    result = await cli("dlq", "replay", "--all", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would replay" in result.stdout
    assert await depth(harness, harness.names.dlq) == 1
    assert await depth(harness, harness.names.requests) == 0


async def test_replay_keeps_a_letter_whose_republish_was_not_confirmed(
    harness: Harness, cli: Cli
) -> None:
    """When the republish is returned (target queue gone), the letter stays in the DLQ."""
    await poisoned(harness, "m-kept")
    assert harness.channel is not None
    await harness.channel.queue_delete(harness.names.requests, if_unused=False, if_empty=False)
    result = await cli("dlq", "replay", "m-kept")
    assert result.exit_code == 1
    assert "1 dead letter(s) not replayed" in result.stderr
    assert await depth(harness, harness.names.dlq) == 1


async def test_replay_of_an_unknown_selector_moves_nothing(harness: Harness, cli: Cli) -> None:
    """A selector that matches nothing is exit 4, and nothing is replayed."""
    await poisoned(harness, "m-one")
    result = await cli("dlq", "replay", "m-one", "7")
    assert result.exit_code == 4
    assert "no dead letter at position or with message_id '7'" in result.stderr
    assert await depth(harness, harness.names.dlq) == 1


async def test_replay_after_the_fix_is_accepted(harness: Harness, cli: Cli) -> None:
    """Rejected under a low TWAP_MAX_QTY, replayed after raising it: the worker accepts it."""
    await harness.start_worker(max_qty=100)
    await rejected_by_worker(harness, submit_body(qty=500), "m-fix")
    [letter] = await cli.json("dlq", "list")
    assert "qty: must be at most 100" in letter["detail"]
    await harness.stop_worker()
    await harness.start_worker()  # the fix: the default limit
    result = await cli("dlq", "replay", "--all")
    assert result.exit_code == 0, result.output
    accepted = await harness.events.wait_for(lambda: harness.events.of("parent.accepted"))
    assert accepted[0]["total_qty"] == 500
    assert await depth(harness, harness.names.dlq) == 0


async def test_purge_asks_first(harness: Harness, cli: Cli) -> None:
    """purge deletes nothing when the answer is no, and everything with --yes."""
    await poisoned(harness, "m-purge")
    refused = await cli("dlq", "purge", input="n\n")
    assert refused.exit_code == 1
    assert await depth(harness, harness.names.dlq) == 1
    purged = await cli("dlq", "purge", "--yes")
    assert purged.exit_code == 0, purged.output
    assert purged.stdout == f"purged 1 dead letter(s) from {harness.names.dlq}\n"
    assert await depth(harness, harness.names.dlq) == 0
