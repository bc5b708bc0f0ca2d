"""The worker's AMQP link: connect (retrying while RabbitMQ is away), declare, consume, relay.

The slice scheduler does not depend on this link: slices keep executing while RabbitMQ is away,
their events wait in the outbox, and aio-pika's robust connection restores channels and
consumers when the broker returns.
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika
from aio_pika.abc import AbstractRobustConnection

from worker.messaging.consumer import BatchingConsumer, ControlConsumer
from worker.messaging.relay import OutboxRelay
from worker.messaging.topology import Names, declare

log = logging.getLogger(__name__)


class AmqpLink:
    def __init__(
        self,
        url: str,
        masked_url: str,
        names: Names,
        relay: OutboxRelay,
        requests: BatchingConsumer,
        control: ControlConsumer,
        prefetch: int,
    ) -> None:
        self.url = url
        self.masked_url = masked_url
        self.names = names
        self.relay = relay
        self.requests = requests
        self.control = control
        self.prefetch = prefetch
        self.connection: AbstractRobustConnection | None = None
        self.ready = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed

    async def connect(self, stopping: asyncio.Event) -> None:
        """Connect, retrying with backoff until it works or the worker stops."""
        wait = 0.5
        while not stopping.is_set():
            try:
                await self._connect_once()
                return
            except Exception as exc:
                log.warning("amqp.connect_failed", extra={"url": self.masked_url,
                                                          "error": repr(exc)[:200],
                                                          "retry_in": wait})
                try:
                    await asyncio.wait_for(stopping.wait(), timeout=wait)
                except TimeoutError:
                    pass
                wait = min(wait * 2, 10.0)

    async def _connect_once(self) -> None:
        connection = await aio_pika.connect_robust(self.url, timeout=10,
                                                   client_properties={"connection_name": "twap-worker"})
        try:
            publish_channel = await connection.channel(publisher_confirms=True)
            topology = await declare(publish_channel, self.names)
            requests_channel = await connection.channel()
            await requests_channel.set_qos(prefetch_count=self.prefetch)
            control_channel = await connection.channel()
            await control_channel.set_qos(prefetch_count=1)
            requests_queue = await requests_channel.declare_queue(self.names.requests, passive=True)
            control_queue = await control_channel.declare_queue(self.names.control, passive=True)
        except Exception:
            await connection.close()
            raise
        self.connection = connection
        self.relay.attach(publish_channel, topology)
        await self.requests.start(requests_queue)
        await self.control.start(control_queue)
        self.ready.set()
        log.info("amqp.connected", extra={"url": self.masked_url,
                                          "namespace": self.names.namespace})

    async def stop_consuming(self) -> None:
        await self.requests.stop_consuming()
        await self.control.stop_consuming()

    async def close(self) -> None:
        self.relay.detach()
        if self.connection is not None:
            await self.connection.close()
            self.connection = None
