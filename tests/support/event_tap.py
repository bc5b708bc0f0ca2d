"""Every delivery on a namespace's events exchange, raw and in arrival order (repeats kept),
with the AMQP properties the contract pins (message_id = event_id, type = event_type)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from worker.messaging.topology import Names, declare


@dataclass(frozen=True, slots=True)
class Delivery:
    message_id: str | None
    type: str | None
    routing_key: str | None
    body: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.body["event_id"])


@dataclass
class EventTap:
    amqp_url: str
    names: Names
    deliveries: list[Delivery] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _connection: AbstractConnection | None = None

    async def open(self) -> EventTap:
        self._connection = await aio_pika.connect(self.amqp_url)
        channel = await self._connection.channel()
        topology = await declare(channel, self.names)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(topology.events, "#")
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.deliveries.append(
            Delivery(
                message.message_id, message.type, message.routing_key, json.loads(message.body)
            )
        )
        self.changed.set()

    def distinct(self) -> list[Delivery]:
        """First arrival of each event_id, in arrival order."""
        seen: set[str] = set()
        out = []
        for delivery in self.deliveries:
            if delivery.event_id not in seen:
                seen.add(delivery.event_id)
                out.append(delivery)
        return out

    def of(self, event_type: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return [
            d.body
            for d in self.distinct()
            if (event_type is None or d.body["event_type"] == event_type)
            and all(d.body.get(k) == v for k, v in match.items())
        ]

    async def wait_for(self, predicate: Callable[[], Any], within: float = 30.0) -> Any:
        async def until() -> Any:
            while not (result := predicate()):
                self.changed.clear()
                await self.changed.wait()
            return result

        return await asyncio.wait_for(until(), within)
