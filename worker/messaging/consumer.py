"""Consumers of `N.requests` (batched) and `N.control`; ack only after the commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from worker.core.intake import Inbound
from worker.runtime.intake import Disposition

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[Inbound]], Awaitable[list[Disposition]]]
ControlHandler = Callable[[bytes, str | None, str | None], Awaitable[Disposition]]


def to_inbound(message: AbstractIncomingMessage) -> Inbound:
    return Inbound(
        body=message.body,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        user_id=message.user_id,
    )


async def settle(message: AbstractIncomingMessage, disposition: Disposition,
                 requeue_delay: float = 0.0) -> None:
    """Ack or requeue; a channel that died meanwhile already requeued it (redelivery is a
    duplicate and changes nothing)."""
    try:
        if disposition is Disposition.ACK:
            await message.ack()
        else:
            await message.nack(requeue=True)
    except Exception as exc:
        log.warning("amqp.settle_failed", extra={"message_id": message.message_id,
                                                  "disposition": disposition.value,
                                                  "error": repr(exc)[:200]})


class BatchingConsumer:
    """Gathers deliveries for up to `wait` seconds or `size` messages, then handles them."""

    def __init__(self, handler: BatchHandler, size: int, wait: float,
                 requeue_delay: float) -> None:
        self.handler = handler
        self.size = size
        self.wait = wait
        self.requeue_delay = requeue_delay
        self._queue: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._consumer_tag: str | None = None
        self._source: AbstractQueue | None = None
        self.busy = False

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        await self._queue.put(message)

    async def start(self, queue: AbstractQueue) -> None:
        self._source = queue
        self._consumer_tag = await queue.consume(self.on_message, no_ack=False)

    async def stop_consuming(self) -> None:
        if self._source is not None and self._consumer_tag is not None:
            try:
                await self._source.cancel(self._consumer_tag)
            except Exception as exc:
                log.warning("amqp.cancel_failed", extra={"error": repr(exc)[:200]})
        self._consumer_tag = None

    @property
    def attached(self) -> bool:
        return self._consumer_tag is not None

    async def run(self, stopping: asyncio.Event) -> None:
        """Handle batches until `stopping` is set and nothing is waiting."""
        while not (stopping.is_set() and self._queue.empty()):
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout=0.2)
            except TimeoutError:
                continue
            batch = [first]
            deadline = asyncio.get_running_loop().time() + self.wait
            while len(batch) < self.size:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    if self._queue.empty():
                        break
                    batch.append(self._queue.get_nowait())
                    continue
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout=remaining))
                except TimeoutError:
                    break
            await self._handle(batch)

    async def _handle(self, batch: list[AbstractIncomingMessage]) -> None:
        self.busy = True
        try:
            try:
                dispositions = await self.handler([to_inbound(m) for m in batch])
            except Exception:
                log.exception("intake.handler_crashed", extra={"batch": len(batch)})
                dispositions = [Disposition.REQUEUE] * len(batch)
            if Disposition.REQUEUE in dispositions and self.requeue_delay:
                await asyncio.sleep(self.requeue_delay)  # back off while the database is away
            await asyncio.gather(*(settle(m, d) for m, d in zip(batch, dispositions,
                                                                 strict=True)))
        finally:
            self.busy = False


class ControlConsumer:
    def __init__(self, handler: ControlHandler, requeue_delay: float) -> None:
        self.handler = handler
        self.requeue_delay = requeue_delay
        self._consumer_tag: str | None = None
        self._source: AbstractQueue | None = None

    async def start(self, queue: AbstractQueue) -> None:
        self._source = queue
        self._consumer_tag = await queue.consume(self._on_message, no_ack=False)

    async def stop_consuming(self) -> None:
        if self._source is not None and self._consumer_tag is not None:
            try:
                await self._source.cancel(self._consumer_tag)
            except Exception as exc:
                log.warning("amqp.cancel_failed", extra={"error": repr(exc)[:200]})
        self._consumer_tag = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            disposition = await self.handler(message.body, message.message_id,
                                             message.correlation_id)
        except Exception:
            log.exception("control.handler_crashed")
            disposition = Disposition.REQUEUE
        if disposition is Disposition.REQUEUE and self.requeue_delay:
            await asyncio.sleep(self.requeue_delay)
        await settle(message, disposition)
