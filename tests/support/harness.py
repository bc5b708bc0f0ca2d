"""Run a real worker in-process against real RabbitMQ and a real database, and watch it from
the outside: publish requests over AMQP, collect events and replies over AMQP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue

from worker.app import Worker
from worker.brokers.base import Broker
from worker.brokers.sim import SimBroker
from worker.messaging.topology import Names, declare, delete_all
from worker.runtime.clock import Clock, utcnow
from worker.settings import Settings

# What every test worker starts with, in-process (worker_settings) or as a child process
# (worker_process.worker_env): short waits, JSON log lines, no HTTP server.
FAST_TIMINGS: Mapping[str, Any] = MappingProxyType(
    {
        "retry_wait_seconds": 0.01,
        "retry_wait_cap_seconds": 0.05,
        "batch_wait_ms": 2.0,
        "requeue_delay_seconds": 0.05,
        "intake_poll_seconds": 0.02,  # each worker stop waits for one poll
        "log_json": True,
        "http_port": 0,  # off; tests of the HTTP endpoints pick a free port
    }
)


def worker_settings(amqp_url: str, database_url: str, namespace: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "database_url": database_url,
        "namespace": namespace,
        **FAST_TIMINGS,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class EventLog:
    """Every event seen on the namespace's exchange, in arrival order, de-duplicated."""

    events: list[dict[str, Any]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, body: dict[str, Any]) -> None:
        if body["event_id"] in self.seen:
            return
        self.seen.add(body["event_id"])
        self.events.append(body)
        self.changed.set()

    def of(self, event_type: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e for e in self.events
            if e["event_type"] == event_type and all(e.get(k) == v for k, v in match.items())
        ]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        async def loop() -> Any:
            while True:
                result = predicate()
                if result:
                    return result
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(loop(), timeout)


class Harness:
    def __init__(self, settings: Settings, broker: Broker | None = None) -> None:
        self.settings = settings
        self.names = Names(settings.namespace)
        self.broker = broker if broker is not None else SimBroker()
        self.worker: Worker | None = None
        self.task: asyncio.Task[None] | None = None
        self.events = EventLog()
        self.replies: dict[str, dict[str, Any]] = {}
        self._replies_changed = asyncio.Event()
        self.connection: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.reply_queue: AbstractQueue | None = None

    async def open(self) -> None:
        url = self.settings.amqp_url.get_secret_value()
        self.connection = await aio_pika.connect_robust(url)
        self.channel = await self.connection.channel()
        topology = await declare(self.channel, self.names)
        events_queue = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        await events_queue.bind(topology.events, "#")
        await events_queue.consume(self._on_event, no_ack=True)
        self.reply_queue = await self.channel.declare_queue(exclusive=True, auto_delete=True)
        await self.reply_queue.consume(self._on_reply, no_ack=True)

    async def _on_event(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.events.add(json.loads(message.body))

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.replies[message.correlation_id or ""] = json.loads(message.body)
        self._replies_changed.set()

    async def start_worker(self, *, clock: Clock = utcnow, **overrides: Any) -> Worker:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        self.worker = Worker(settings, broker=self.broker, clock=clock)
        self.task = asyncio.create_task(self.worker.run())
        await asyncio.wait_for(self._until_ready(), 20)
        return self.worker

    async def _until_ready(self) -> None:
        assert self.worker is not None and self.task is not None
        while not (self.worker.recovered.is_set() and self.worker.link.ready.is_set()):
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)

    async def stop_worker(self) -> None:
        if self.worker is not None and self.task is not None:
            self.worker.stop()
            await asyncio.wait_for(self.task, 60)
        self.worker, self.task = None, None

    async def publish(
        self, body: dict[str, Any] | bytes | str, *, queue: str | None = None,
        reply: bool = False, **props: Any,
    ) -> str:
        """Publish to N.requests (or another queue); returns the correlation id."""
        assert self.channel is not None
        raw = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        correlation_id = props.pop("correlation_id", uuid.uuid4().hex)
        if reply:
            assert self.reply_queue is not None
            props["reply_to"] = self.reply_queue.name
        await self.channel.default_exchange.publish(
            aio_pika.Message(raw, correlation_id=correlation_id,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **props),
            routing_key=queue or self.names.requests,
        )
        return correlation_id

    async def control(self, command: str, reason: str | None = None) -> None:
        body: dict[str, Any] = {"type": command, "operator": "test"}
        if reason:
            body["reason"] = reason
        await self.publish(body, queue=self.names.control)

    async def reply_for(self, correlation_id: str, timeout: float = 15.0) -> dict[str, Any]:
        async def loop() -> dict[str, Any]:
            while correlation_id not in self.replies:
                self._replies_changed.clear()
                await self._replies_changed.wait()
            return self.replies[correlation_id]

        return await asyncio.wait_for(loop(), timeout)

    async def dlq_messages(self, expected: int, timeout: float = 15.0) -> list[Any]:
        """Drain the namespace's DLQ (acking), waiting until `expected` messages arrived."""
        assert self.channel is not None
        queue = await self.channel.get_queue(self.names.dlq)
        got: list[Any] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(got) < expected and asyncio.get_running_loop().time() < deadline:
            message = await queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.05)
                continue
            got.append(message)
        return got

    async def close(self) -> None:
        await self.stop_worker()
        if self.channel is not None:
            try:
                await delete_all(self.channel, self.names)
            except Exception:
                pass
        if self.connection is not None:
            await self.connection.close()


def submit_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "submit",
        "strategy_id": "alpha_1",
        "symbol": "AAPL",
        "side": "buy",
        "qty": 103,
        "duration_seconds": 5,
        "interval_seconds": 1,
        "request_id": uuid.uuid4().hex,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}
