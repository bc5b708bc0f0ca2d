"""The outbox relay: publish committed messages with confirms, then delete them.

Messages go out in commit order (outbox ids grow), a batch at a time with many publishes in
flight on one confirming channel; a row is deleted only after RabbitMQ confirmed it. While
RabbitMQ is away the rows wait, and go out in order when it returns.
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from worker.core.records import OutboxMessage
from worker.messaging.topology import Topology
from worker.store.repository import Store

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(self, store: Store, batch: int = 500, idle_poll: float = 1.0,
                 gather: float = 0.0) -> None:
        self.store = store
        self.batch = batch
        self.idle_poll = idle_poll
        self.gather = gather
        self._wake = asyncio.Event()
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self.published = 0

    def notify(self) -> None:
        self._wake.set()

    def attach(self, channel: AbstractChannel, topology: Topology) -> None:
        self._channel = channel
        self._exchanges = {"events": topology.events, "dlx": topology.dlx,
                           "": channel.default_exchange}
        self.notify()

    def detach(self) -> None:
        self._channel = None
        self._exchanges = {}

    async def run(self, stopping: asyncio.Event) -> None:
        """Relay until `stopping` is set, then one last drain."""
        backoff = 0.2
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.idle_poll)
            except TimeoutError:
                pass
            if self.gather and not stopping.is_set():
                # Let the commits of a burst land: one round (one read, one delete) then
                # carries them all instead of one round per commit.
                await asyncio.sleep(self.gather)
            self._wake.clear()
            try:
                while await self.relay_once() == self.batch:
                    pass
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox.relay_failed", extra={"error": str(exc)[:300]})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                self.notify()
            if stopping.is_set():
                return

    async def relay_once(self) -> int:
        """Publish one batch; returns how many rows were published and removed."""
        if self._channel is None or self._channel.is_closed:
            return 0
        rows = await self.store.outbox_fetch(self.batch)
        if not rows:
            return 0
        results = await asyncio.gather(*(self._publish(m) for _, m in rows),
                                       return_exceptions=True)
        done: list[int] = []
        for (row_id, _), result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                # Keep order: stop at the first failure; later rows go again (subscribers
                # de-duplicate on event_id).
                log.warning("outbox.publish_failed", extra={"error": repr(result)[:300]})
                break
            done.append(row_id)
        if done:
            await self.store.outbox_remove(done)
            self.published += len(done)
        if len(done) < len(rows):
            raise ConnectionError("outbox publish interrupted")
        return len(done)

    async def _publish(self, message: OutboxMessage) -> None:
        exchange = self._exchanges[message.exchange]
        amqp = aio_pika.Message(
            body=message.body,
            content_type="application/json" if message.exchange != "dlx" else None,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            type=message.type,
            headers=message.headers or None,  # type: ignore[arg-type]
        )
        await exchange.publish(amqp, routing_key=message.routing_key, timeout=30)
