"""Submit a TWAP to the worker and wait for its reply.

    TWAP_AMQP_URL=amqp://guest:guest@localhost:5672/ TWAP_NAMESPACE=twap \\
        python examples/python/publish_twap.py --symbol AAPL --side buy --qty 100 --duration 60

Prints the reply (JSON) on stdout. Exit status: 0 accepted or duplicate, 1 rejected, 2 no reply.
Needs only aio-pika.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid

import aio_pika


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Submit a TWAP and wait for the reply.")
    parser.add_argument("--strategy", default="example_py")
    parser.add_argument("--symbol", default="AAPL")
    parser.add_argument("--side", choices=["buy", "sell"], default="buy")
    parser.add_argument("--qty", type=int, default=100)
    parser.add_argument("--duration", type=int, default=60, help="seconds")
    parser.add_argument("--interval", type=int, default=10, help="seconds between slices")
    parser.add_argument("--limit-price", help="makes it a limit order")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the reply")
    return parser.parse_args()


def submit_message(args: argparse.Namespace) -> dict[str, object]:
    body: dict[str, object] = {
        "type": "submit",
        "strategy_id": args.strategy,
        "symbol": args.symbol,
        "side": args.side,
        "qty": args.qty,
        "duration_seconds": args.duration,
        "interval_seconds": args.interval,
        # The idempotency key: publishing the same message again yields `duplicate`.
        "request_id": uuid.uuid4().hex,
    }
    if args.limit_price:
        body.update(order_type="limit", limit_price=args.limit_price)  # a string keeps it exact
    return body


async def main() -> int:
    args = parse_args()
    url = os.environ.get("TWAP_AMQP_URL", "amqp://guest:guest@localhost:5672/")
    namespace = os.environ.get("TWAP_NAMESPACE", "twap")
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        # A private, server-named queue for the reply; it disappears with the connection.
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)
        correlation_id = uuid.uuid4().hex
        await channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps(submit_message(args)).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                correlation_id=correlation_id,
                reply_to=replies.name,
                message_id=uuid.uuid4().hex,
            ),
            routing_key=f"{namespace}.requests",
        )
        try:
            async with asyncio.timeout(args.timeout):
                async with replies.iterator() as messages:
                    async for message in messages:
                        await message.ack()
                        if message.correlation_id == correlation_id:
                            reply = json.loads(message.body)
                            break
        except TimeoutError:
            print(f"no reply within {args.timeout:g} s", file=sys.stderr)
            return 2
    print(json.dumps(reply))
    return 1 if reply["outcome"] == "rejected" else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
