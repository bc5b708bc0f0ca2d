"""The benchmark's side of RabbitMQ: publish requests with many confirms in flight, and record
when each event arrives (wall clock) on a queue bound to `N.events`."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from worker.messaging.topology import Names, declare, delete_all


@dataclass(slots=True)
class Arrival:
    at: float  # wall clock, seconds since the epoch
    routing_key: str
    body: bytes | None  # kept only for the event types the benchmark asked for


@dataclass
class EventRecorder:
    keep_bodies: frozenset[str]
    arrivals: dict[str, list[Arrival]] = field(default_factory=lambda: defaultdict(list))
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_message(self, message: AbstractIncomingMessage) -> None:
        event_type = message.type or "unknown"
        keep = event_type in self.keep_bodies
        self.arrivals[event_type].append(
            Arrival(time.time(), message.routing_key or "", message.body if keep else None)
        )
        self.changed.set()

    def count(self, event_type: str) -> int:
        return len(self.arrivals.get(event_type, ()))

    async def wait_until(self, done: object, within: float) -> bool:
        """Wait until `done()` is true; False after `within` seconds."""
        assert callable(done)
        deadline = time.monotonic() + within
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 0.5))
            except TimeoutError:
                pass
        return True


class BenchClient:
    def __init__(self, amqp_url: str, names: Names) -> None:
        self.url = amqp_url
        self.names = names
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.recorder: EventRecorder | None = None

    async def open(self, bindings: list[str], keep_bodies: set[str]) -> EventRecorder:
        """Declare the namespace's topology and subscribe to `bindings` on N.events."""
        self.connection = await aio_pika.connect(
            self.url, client_properties={"connection_name": f"twap-bench {self.names.namespace}"}
        )
        self.channel = await self.connection.channel(publisher_confirms=True)
        topology = await declare(self.channel, self.names)
        events_channel = await self.connection.channel()
        queue = await events_channel.declare_queue(exclusive=True, auto_delete=True)
        for key in bindings:
            await queue.bind(topology.events, key)
        self.recorder = EventRecorder(frozenset(keep_bodies))
        recorder = self.recorder

        async def on_message(message: AbstractIncomingMessage) -> None:
            recorder.on_message(message)

        await queue.consume(on_message, no_ack=True)
        return self.recorder

    async def publish(self, body: bytes, routing_key: str | None = None) -> float:
        """Publish one request (persistent, confirmed); returns the time just before."""
        assert self.channel is not None
        at = time.time()
        await self.channel.default_exchange.publish(
            aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
            ),
            routing_key=routing_key or self.names.requests,
        )
        return at

    async def publish_many(self, bodies: list[bytes], in_flight: int = 500) -> tuple[float, float]:
        """Publish every body as fast as RabbitMQ confirms them, `in_flight` unconfirmed at a
        time; returns (time of the first publish, time of the last confirm)."""
        assert self.channel is not None
        exchange = self.channel.default_exchange
        window = asyncio.Semaphore(in_flight)

        async def one(body: bytes) -> None:
            try:
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        content_type="application/json",
                    ),
                    routing_key=self.names.requests,
                )
            finally:
                window.release()

        first = time.time()
        tasks = []
        for body in bodies:
            await window.acquire()
            tasks.append(asyncio.ensure_future(one(body)))
        await asyncio.gather(*tasks)
        return first, time.time()

    async def close(self) -> None:
        if self.channel is not None and not self.channel.is_closed:
            try:
                await delete_all(self.channel, self.names)
            except Exception:
                pass
        if self.connection is not None:
            await self.connection.close()
