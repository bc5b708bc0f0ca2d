"""Consumers of `N.requests` (batched) and `N.control`; ack only after the commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from worker.core.intake import Inbound
from worker.messaging.dispositions import Disposition

log = logging.getLogger(__name__)

# The handler gets the batch and what `prepare` made of it ahead of time (None: make it now).
BatchHandler = Callable[[list[Inbound], Any], Awaitable[list[Disposition]]]
Prepare = Callable[[list[Inbound]], Any]
# body, message_id, correlation_id, user_id (the AMQP property RabbitMQ validated)
ControlHandler = Callable[[bytes, str | None, str | None, str | None], Awaitable[Disposition]]
Decide = Callable[[list[AbstractIncomingMessage]], Awaitable[list[Disposition]]]
HOLD_WAIT_CAP = 5.0


def to_inbound(message: AbstractIncomingMessage) -> Inbound:
    return Inbound(
        body=message.body,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        user_id=message.user_id,
        timestamp=message.timestamp,
    )


async def settle(message: AbstractIncomingMessage, disposition: Disposition,
                 requeue_poison: bool = True) -> None:
    """Ack or requeue; a channel that died meanwhile already requeued it (redelivery is a
    duplicate and changes nothing). With `requeue_poison` off, a message the handler failed
    on is rejected at once: RabbitMQ dead-letters it through the queue's DLX."""
    try:
        if disposition is Disposition.ACK:
            await message.ack()
        elif disposition is Disposition.REQUEUE and not requeue_poison:
            log.error("amqp.dead_lettered_after_failure",
                      extra={"message_id": message.message_id})
            await message.reject(requeue=False)
        else:
            await message.nack(requeue=True)
    except Exception as exc:
        log.warning("amqp.settle_failed", extra={"message_id": message.message_id,
                                                  "disposition": disposition.value,
                                                  "error": repr(exc)[:200]})


async def decide_holding(
    messages: list[AbstractIncomingMessage], decide: Decide, first_wait: float,
    requeue_delay: float, stopping: asyncio.Event | None = None,
    requeue_poison: bool = True,
) -> None:
    """Decide and settle every message. Those the handler answers RETRY (the database is away)
    stay unacked and are decided again after a growing wait: a nack would count towards the
    queue's delivery limit and dead-letter a request that did nothing wrong. On shutdown what
    is still held goes back to the queue."""
    pending, wait = messages, max(first_wait, 0.05)
    while pending:
        dispositions = await decide(pending)
        held = [m for m, d in zip(pending, dispositions, strict=True) if d is Disposition.RETRY]
        done = [(m, d) for m, d in zip(pending, dispositions, strict=True)
                if d is not Disposition.RETRY]
        if held and stopping is not None and stopping.is_set():
            done.extend((m, Disposition.REQUEUE) for m in held)
            held = []
        poisoned = any(d is Disposition.REQUEUE for _, d in done)
        if poisoned and requeue_poison and requeue_delay:
            await asyncio.sleep(requeue_delay)  # a poison message: don't spin on it
        await asyncio.gather(*(settle(m, d, requeue_poison) for m, d in done))
        if held:
            log.warning("amqp.holding", extra={"messages": len(held), "retry_in": wait})
            await _pause(wait, stopping)
            wait = min(wait * 2, HOLD_WAIT_CAP)
        pending = held


async def _pause(seconds: float, stopping: asyncio.Event | None) -> None:
    if stopping is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        pass


class Subscription:
    """A consumer on one queue: attach, detach; subclasses say what a delivery does."""

    def __init__(self) -> None:
        self._consumer_tag: str | None = None
        self._source: AbstractQueue | None = None

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        raise NotImplementedError

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


class Preparation(Protocol):
    """What `prepare` makes of a batch: enough to tell whether two batches may overlap."""

    @property
    def keys(self) -> frozenset[str]: ...


@dataclass(eq=False)
class _Turn:
    batch: list[AbstractIncomingMessage]
    inbound: dict[int, Inbound]  # id(message) → its Inbound, made once per delivery
    ahead: Preparation | None = None
    task: asyncio.Task[None] | None = None

    def inbound_of(self, messages: list[AbstractIncomingMessage]) -> list[Inbound]:
        return [self.inbound[id(m)] for m in messages]


class BatchingConsumer(Subscription):
    """Gathers deliveries into batches of up to `size` messages, then handles them.

    A request that arrives with nothing in flight goes at once, with whatever is already
    queued; while a batch is being decided the next one gathers for up to `wait` seconds.

    A batch is prepared (`prepare`: parsing and planning, pure CPU) as soon as it is gathered,
    while the batches before it still wait on their commits, and up to `concurrency` batches
    are decided at once: the worker's CPU and the database's work overlap. A batch that shares
    a key (a parent order id) with an earlier batch still in flight waits until every earlier
    batch is settled, so a cancel always sees the submit before it and a repeated request sees
    the first; a batch that could not be prepared waits the same way.

    Idle, it looks every `poll` seconds whether it should stop.
    """

    def __init__(self, handler: BatchHandler, size: int, wait: float,
                 requeue_delay: float, prepare: Prepare | None = None,
                 concurrency: int = 1, poll: float = 0.2) -> None:
        super().__init__()
        self.handler = handler
        self.prepare = prepare
        self.size = size
        self.wait = wait
        self.requeue_delay = requeue_delay
        self.poll = poll
        self._queue: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._stopping: asyncio.Event | None = None
        self._turns: list[_Turn] = []  # in arrival order, until settled
        self._slots = asyncio.Semaphore(max(1, concurrency))

    @property
    def busy(self) -> bool:
        return bool(self._turns)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        await self._queue.put(message)

    async def run(self, stopping: asyncio.Event) -> None:
        """Handle batches until `stopping` is set and nothing is waiting."""
        self._stopping = stopping
        while not (stopping.is_set() and self._queue.empty()):
            try:
                first = await asyncio.wait_for(self._queue.get(), timeout=self.poll)
            except TimeoutError:
                continue
            batch = [first]
            # Gather only while a batch is being decided: then more requests ride on the next
            # commit. With nothing in flight, a lone request goes at once.
            deadline = asyncio.get_running_loop().time() + (self.wait if self._turns else 0.0)
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
            turn = _Turn(batch, {id(m): to_inbound(m) for m in batch})
            self._turns.append(turn)
            turn.task = asyncio.create_task(self._handle(turn))
        while self._turns:
            await asyncio.wait([t.task for t in self._turns if t.task is not None])

    async def _handle(self, turn: _Turn) -> None:
        try:
            turn.ahead = self._prepare(turn)
            earlier = [t for t in self._turns[: self._turns.index(turn)]
                       if t.task is not None and not t.task.done()]
            if earlier and not all(_disjoint(turn.ahead, t.ahead) for t in earlier):
                await asyncio.wait([t.task for t in earlier if t.task is not None])
            async with self._slots:
                first = True

                async def decide(messages: list[AbstractIncomingMessage]) -> list[Disposition]:
                    # What was prepared serves the first attempt (always the whole batch); a
                    # retry after a database outage plans again, at its own time.
                    nonlocal first
                    prepared, first = (turn.ahead if first else None), False
                    return await self._decide(turn.inbound_of(messages), prepared)

                await decide_holding(turn.batch, decide, self.requeue_delay, self.requeue_delay,
                                     self._stopping)
        finally:
            self._turns.remove(turn)

    def _prepare(self, turn: _Turn) -> Preparation | None:
        if self.prepare is None:
            return None
        try:
            prepared: Preparation = self.prepare(turn.inbound_of(turn.batch))
            return prepared
        except Exception:
            log.exception("intake.prepare_crashed", extra={"batch": len(turn.batch)})
            return None

    async def _decide(self, batch: list[Inbound], prepared: Any = None) -> list[Disposition]:
        """The handler's answer; when it fails on the batch, each half is decided on its own
        (again and again), so only the message that makes it fail is requeued, never the
        neighbours batched with it."""
        try:
            return await self.handler(batch, prepared)
        except Exception:
            if len(batch) == 1:
                log.exception("intake.handler_crashed", extra={
                    "batch": 1, "message_id": batch[0].message_id})
                return [Disposition.REQUEUE]
            log.exception("intake.handler_crashed_splitting", extra={"batch": len(batch)})
            half = len(batch) // 2
            return await self._decide(batch[:half]) + await self._decide(batch[half:])


def _disjoint(a: Preparation | None, b: Preparation | None) -> bool:
    """Two batches may be decided side by side: both known, no key in common."""
    return a is not None and b is not None and not (a.keys & b.keys)


class ControlConsumer(Subscription):
    """One control command at a time (prefetch 1), in order.

    A command the handler fails on (not a database outage: that holds it) is dead-lettered
    after that one attempt: requeued, it would come back first and hold up the command behind
    it, a kill switch perhaps, for every further attempt."""

    def __init__(self, handler: ControlHandler, requeue_delay: float) -> None:
        super().__init__()
        self.handler = handler
        self.requeue_delay = requeue_delay

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        # Held here while the database is away (prefetch 1: later commands wait, in order);
        # a channel that closes meanwhile cancels this task and RabbitMQ requeues the command.
        await decide_holding([message], self._decide, self.requeue_delay, self.requeue_delay,
                             requeue_poison=False)

    async def _decide(self, messages: list[AbstractIncomingMessage]) -> list[Disposition]:
        (message,) = messages
        try:
            return [await self.handler(message.body, message.message_id,
                                       message.correlation_id, message.user_id)]
        except Exception:
            log.exception("control.handler_crashed")
            return [Disposition.REQUEUE]
