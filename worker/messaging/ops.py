"""Operator-side AMQP for the `twap` subcommands: one short connection per command.

Publish a request and await its reply, publish control commands with confirms, read queue
depths and consumer counts with passive declares, follow the events exchange from a temporary
queue. Failures surface as BrokerUnavailable or MissingTopology, one line, password masked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelNotFoundEntity, DeliveryError

from worker.messaging.topology import Names

CONNECT_TIMEOUT = 5.0


class BrokerUnavailable(Exception):
    """RabbitMQ could not be reached or dropped the command."""


class MissingTopology(Exception):
    """A queue or exchange of the namespace does not exist: no worker ever declared it."""

    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(
            f"{name} does not exist in RabbitMQ (has a worker ever started with "
            f"TWAP_NAMESPACE={namespace}?)"
        )
        self.name = name


@dataclass(frozen=True, slots=True)
class QueueStats:
    name: str
    exists: bool
    messages: int  # ready messages; unacknowledged ones are not counted by a passive declare
    consumers: int


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def login_of(url: str) -> str:
    """The user RabbitMQ will see for this URL (aio-pika's default is guest)."""
    return unquote(urlsplit(url).username or "guest")


class EventStream:
    """Events from a temporary queue bound to the events exchange, decoded, in arrival order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            body = json.loads(message.body)
        except ValueError:
            return
        if isinstance(body, dict):
            await self._queue.put(body)

    async def next(self, within: float | None = None) -> dict[str, Any] | None:
        """The next event, or None when `within` seconds pass without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), within)
        except TimeoutError:
            return None

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self._queue.get()


class OpsLink:
    def __init__(self, connection: AbstractConnection, names: Names, login: str) -> None:
        self.connection = connection
        self.names = names
        self.login = login

    async def queue_stats(self, name: str) -> QueueStats:
        """Depth and consumers of one queue; a passive declare of a missing queue closes its
        channel, so each check gets a channel of its own."""
        channel = await self.connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except ChannelNotFoundEntity:
            return QueueStats(name, False, 0, 0)
        result = queue.declaration_result
        await channel.close()
        return QueueStats(
            name, True, int(result.message_count or 0), int(result.consumer_count or 0)
        )

    async def publish(self, queue: str, body: bytes, **properties: Any) -> None:
        """Publish persistent JSON to `queue` and wait for the broker's confirm; a queue that
        does not exist (message returned) raises MissingTopology."""
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=properties.pop("message_id", None) or uuid.uuid4().hex,
            user_id=self.login,
            app_id="twap-cli",
            **properties,
        )
        try:
            await channel.default_exchange.publish(
                message, routing_key=queue, mandatory=True, timeout=30
            )
        except DeliveryError:
            raise MissingTopology(queue, self.names.namespace) from None
        finally:
            if not channel.is_closed:
                await channel.close()

    async def request(
        self, queue: str, body: bytes, *, message_id: str, wait: float
    ) -> dict[str, Any] | None:
        """Publish with reply_to a temporary queue; the decoded reply, or None on timeout."""
        channel = await self.connection.channel()
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)
        correlation_id = uuid.uuid4().hex
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def on_reply(message: AbstractIncomingMessage) -> None:
            if message.correlation_id == correlation_id and not answer.done():
                answer.set_result(json.loads(message.body))

        await replies.consume(on_reply, no_ack=True)
        try:
            await self.publish(
                queue,
                body,
                message_id=message_id,
                correlation_id=correlation_id,
                reply_to=replies.name,
            )
            return await asyncio.wait_for(answer, wait)
        except TimeoutError:
            return None
        finally:
            await channel.close()

    @asynccontextmanager
    async def subscribe(self, binding_keys: list[str]) -> AsyncIterator[EventStream]:
        """Bind a temporary exclusive queue to the events exchange; events published after
        this returns are all delivered (read the database after entering, not before)."""
        channel = await self.connection.channel()
        stream = EventStream()
        try:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            for key in binding_keys:
                await queue.bind(self.names.events, routing_key=key)
        except ChannelNotFoundEntity:
            raise MissingTopology(self.names.events, self.names.namespace) from None
        await queue.consume(stream.on_message, no_ack=True)
        try:
            yield stream
        finally:
            if not channel.is_closed:
                await channel.close()


def quiet_client_logs() -> None:
    """aio-pika logs a failed connect at ERROR before raising it; the caller reports it once."""
    for name in ("aio_pika", "aiormq"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


@asynccontextmanager
async def connect(
    url: str, masked_url: str, names: Names, connect_seconds: float = CONNECT_TIMEOUT
) -> AsyncIterator[OpsLink]:
    """One connection for one command; AMQP failures become BrokerUnavailable."""
    try:
        connection = await aio_pika.connect(
            url, timeout=connect_seconds, client_properties={"connection_name": "twap-cli"}
        )
    except (AMQPError, OSError, TimeoutError) as exc:
        raise BrokerUnavailable(f"RabbitMQ unreachable at {masked_url}: {describe(exc)}") from None
    try:
        yield OpsLink(connection, names, login_of(url))
    except (AMQPError, ConnectionError) as exc:
        raise BrokerUnavailable(f"RabbitMQ error at {masked_url}: {describe(exc)}") from None
    finally:
        try:
            await connection.close()
        except Exception:  # closing a dead connection: nothing more to do
            pass
