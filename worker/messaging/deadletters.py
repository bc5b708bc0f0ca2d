"""The dead-letter queue, as operators see it: browse, replay, purge.

Browsing takes every message with a manual ack and gives them all back (nack + requeue) in the
order they came: a quorum queue puts requeued messages at its tail, so taking all of them keeps
the order. A replay republishes a message's body and properties to the queue it died in and
acks it only after RabbitMQ confirmed the republish; everything else goes back to the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelNotFoundEntity

from worker.messaging.ops import MissingTopology, OpsLink, describe

BROWSE_CAP = 10_000
# Headers that belong to a death, not to the message: the worker's reason, RabbitMQ's history
# and the quorum queue's redelivery counter.
DEATH_HEADERS = ("x-death", "x-first-death-", "x-last-death-", "x-delivery-count", "x-twap-")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    position: int  # 1-based, in queue order at the time of the browse
    message_id: str | None
    correlation_id: str | None
    reason: str  # the worker's (schema, plan, not_json, ...) or RabbitMQ's (delivery_limit, ...)
    detail: str
    dead_lettered_by: str  # worker | rabbitmq
    source_queue: str | None
    died_at: datetime | None
    deaths: int
    body: bytes
    properties: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)


class SelectionError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    letter: DeadLetter
    target: str
    replayed: bool
    error: str | None = None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def to_dead_letter(position: int, message: AbstractIncomingMessage) -> DeadLetter:
    headers: dict[str, Any] = dict(message.headers or {})
    deaths = headers.get("x-death")
    first: dict[str, Any] = (
        deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
    )
    if "x-twap-reason" in headers:
        reason = _text(headers["x-twap-reason"]) or "rejected"
        detail = _text(headers.get("x-twap-errors")) or ""
        by, source, died_at = "worker", _text(headers.get("x-twap-source-queue")), None
    else:
        reason = _text(first.get("reason")) or "unknown"
        source = _text(first.get("queue"))
        count = first.get("count")
        detail = f"dead-lettered by RabbitMQ from {source or '?'}"
        if reason == "delivery_limit":
            detail += " after too many redeliveries (poison message: check the worker's logs)"
        elif count:
            detail += f" ({count} times)"
        by = "rabbitmq"
        died_at = first.get("time") if isinstance(first.get("time"), datetime) else None
    properties = {
        key: getattr(message, key)
        for key in (
            "content_type",
            "content_encoding",
            "correlation_id",
            "reply_to",
            "message_id",
            "timestamp",
            "type",
            "user_id",
            "app_id",
            "priority",
        )
        if getattr(message, key, None) not in (None, 0, "")
    }
    return DeadLetter(
        position=position,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        reason=reason,
        detail=detail,
        dead_lettered_by=by,
        source_queue=source,
        died_at=died_at,
        deaths=int(first.get("count") or 1) if first else 1,
        body=message.body,
        properties=properties,
        headers=headers,
    )


def select(
    letters: Sequence[DeadLetter], selectors: Sequence[str], every: bool
) -> list[DeadLetter]:
    """Letters named by position (1-based) or message_id, in queue order; all with `every`."""
    if every:
        return list(letters)
    if not selectors:
        raise SelectionError("name the dead letters to replay (position or message_id), or --all")
    chosen: dict[int, DeadLetter] = {}
    for selector in selectors:
        found = [
            letter
            for letter in letters
            if letter.message_id == selector
            or (selector.isdigit() and letter.position == int(selector))
        ]
        if not found:
            raise SelectionError(f"no dead letter at position or with message_id {selector!r}")
        chosen.update((letter.position, letter) for letter in found)
    return [chosen[p] for p in sorted(chosen)]


def republished(message: AbstractIncomingMessage, login: str) -> aio_pika.Message:
    """The original body and properties, without the death headers. A user_id other than our
    login would make RabbitMQ close the channel, so it is dropped."""
    headers = {
        key: value
        for key, value in (message.headers or {}).items()
        if not key.startswith(DEATH_HEADERS)
    }
    return aio_pika.Message(
        message.body,
        headers=headers or None,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        user_id=message.user_id if message.user_id == login else None,
        app_id=message.app_id,
    )


class DeadLetterQueue:
    def __init__(self, link: OpsLink) -> None:
        self.link = link
        self.names = link.names

    def target_of(self, letter: DeadLetter) -> str:
        """Back where it died, if that is one of the namespace's input queues."""
        if letter.source_queue in (self.names.requests, self.names.control):
            return letter.source_queue
        return self.names.requests

    async def _dlq(self, channel: AbstractChannel) -> AbstractQueue:
        try:
            return await channel.declare_queue(self.names.dlq, passive=True)
        except ChannelNotFoundEntity:
            raise MissingTopology(self.names.dlq, self.names.namespace) from None

    async def _take_all(self, channel: AbstractChannel, cap: int) -> list[AbstractIncomingMessage]:
        queue = await self._dlq(channel)
        taken: list[AbstractIncomingMessage] = []
        while len(taken) < cap:
            message = await queue.get(no_ack=False, fail=False, timeout=10)
            if message is None:
                break
            taken.append(message)
        return taken

    @staticmethod
    async def _give_back(messages: Sequence[AbstractIncomingMessage]) -> None:
        for message in messages:  # one by one, in order: they return to the tail in order
            await message.nack(requeue=True)

    async def browse(self, cap: int = BROWSE_CAP) -> list[DeadLetter]:
        channel = await self.link.connection.channel()
        taken: list[AbstractIncomingMessage] = []
        try:
            taken = await self._take_all(channel, cap)
            return [to_dead_letter(i, m) for i, m in enumerate(taken, start=1)]
        finally:
            if not channel.is_closed:
                await self._give_back(taken)
                await channel.close()

    async def replay(
        self, selectors: Sequence[str], every: bool, *, dry_run: bool, cap: int = BROWSE_CAP
    ) -> list[ReplayOutcome]:
        """Republish the chosen letters (confirm, then ack each); nothing moves on a dry run."""
        channel = await self.link.connection.channel(publisher_confirms=True, on_return_raises=True)
        taken: list[AbstractIncomingMessage] = []
        settled: set[int] = set()
        outcomes: list[ReplayOutcome] = []
        try:
            taken = await self._take_all(channel, cap)
            letters = [to_dead_letter(i, m) for i, m in enumerate(taken, start=1)]
            for letter in select(letters, selectors, every):
                target = self.target_of(letter)
                if dry_run:
                    outcomes.append(ReplayOutcome(letter, target, replayed=False))
                    continue
                message = taken[letter.position - 1]
                try:
                    await channel.default_exchange.publish(
                        republished(message, self.link.login),
                        routing_key=target,
                        mandatory=True,
                        timeout=30,
                    )
                except (aio_pika.exceptions.DeliveryError, TimeoutError) as exc:
                    outcomes.append(ReplayOutcome(letter, target, False, describe(exc)))
                    continue
                await message.ack()  # only now: the republished copy is safe in `target`
                settled.add(letter.position)
                outcomes.append(ReplayOutcome(letter, target, replayed=True))
            return outcomes
        finally:
            if not channel.is_closed:
                await self._give_back([m for i, m in enumerate(taken, start=1) if i not in settled])
                await channel.close()

    async def purge(self) -> int:
        channel = await self.link.connection.channel()
        queue = await self._dlq(channel)
        result = await queue.purge()
        await channel.close()
        return int(result.message_count or 0)
