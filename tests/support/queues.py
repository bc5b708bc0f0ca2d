"""A queue's figures read from RabbitMQ with a passive declare (nothing is created), on a
connection of its own."""

from __future__ import annotations

import aio_pika


async def _figures(amqp_url: str, queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of `queue`."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        result = declared.declaration_result
        return int(result.message_count or 0), int(result.consumer_count or 0)


async def message_count(amqp_url: str, queue: str) -> int:
    """Ready messages in `queue` (those a consumer holds unacknowledged are not counted)."""
    return (await _figures(amqp_url, queue))[0]


async def consumer_count(amqp_url: str, queue: str) -> int:
    return (await _figures(amqp_url, queue))[1]
