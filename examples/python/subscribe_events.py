"""Print the worker's events as JSON lines, de-duplicated on event_id.

    TWAP_AMQP_URL=amqp://guest:guest@localhost:5672/ TWAP_NAMESPACE=twap \\
        python examples/python/subscribe_events.py --bind 'slice.*.alpha_1' --bind 'parent.#'

Routing keys are `{event_type}.{strategy_id}` (control events: `control.{what}`), so a binding
pattern picks events by type, by strategy, or both. Writes `ready` on stderr once bound.
With --until TYPE it exits after the first event of that type. Needs only aio-pika.

Fills are also summed up for a person on stderr (stdout stays one JSON event per line):

    fill: slice 0 AAPL buy 4 @ 190.2700000000 (parent filled 4, avg 190.2700000000)
    completed: AAPL buy filled 7 of 7, avg 190.2700000000, outcome filled
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aio_pika


def fill_line(event: dict[str, Any]) -> str | None:
    """A readable line for a fill or a parent's end; None for other events."""
    kind = event["event_type"]
    if kind == "slice.fill":
        return (
            f"fill: slice {event['slice_num']} {event['symbol']} {event['side']} "
            f"{event['fill_qty']} @ {event['fill_price']} "
            f"(parent filled {event['parent_filled_qty']}, avg {event['parent_avg_fill_price']})"
        )
    if kind == "parent.completed":
        # avg_fill_price is null when nothing filled.
        avg = event["avg_fill_price"] or "-"
        return (
            f"completed: {event['symbol']} {event['side']} filled {event['filled_qty']} "
            f"of {event['total_qty']}, avg {avg}, outcome {event['outcome']}"
        )
    return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Print the worker's events.")
    parser.add_argument("--bind", action="append", help="routing key pattern (default: #)")
    parser.add_argument("--until", help="exit after the first event of this event_type")
    return parser.parse_args()


async def main() -> int:
    args = parse_args()
    url = os.environ.get("TWAP_AMQP_URL", "amqp://guest:guest@localhost:5672/")
    namespace = os.environ.get("TWAP_NAMESPACE", "twap")
    connection = await aio_pika.connect_robust(url)
    seen: set[str] = set()  # delivery is at least once
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        # The worker declares the exchange; declaring it here too (same arguments) lets the
        # subscriber start first.
        events = await channel.declare_exchange(
            f"{namespace}.events", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for pattern in args.bind or ["#"]:
            await queue.bind(events, pattern)
        print("ready", file=sys.stderr, flush=True)
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                event = json.loads(message.body)
                if event["event_id"] in seen:
                    continue
                seen.add(event["event_id"])
                print(json.dumps(event), flush=True)
                line = fill_line(event)
                if line is not None:
                    print(line, file=sys.stderr, flush=True)
                if event["event_type"] == args.until:
                    return 0
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(0)
