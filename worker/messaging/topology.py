"""The contract's names, derived from the namespace, and their idempotent declaration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

DELIVERY_LIMIT = 5


@dataclass(frozen=True, slots=True)
class Names:
    namespace: str

    @property
    def requests(self) -> str:
        return f"{self.namespace}.requests"

    @property
    def control(self) -> str:
        return f"{self.namespace}.control"

    @property
    def events(self) -> str:
        return f"{self.namespace}.events"

    @property
    def dlx(self) -> str:
        return f"{self.namespace}.dlx"

    @property
    def dlq(self) -> str:
        return f"{self.namespace}.requests.dlq"

    @property
    def queues(self) -> tuple[str, str, str]:
        return (self.requests, self.control, self.dlq)


@dataclass(frozen=True, slots=True)
class Topology:
    requests: AbstractQueue
    control: AbstractQueue
    dlq: AbstractQueue
    events: AbstractExchange
    dlx: AbstractExchange


def _quorum(dlx: str | None, delivery_limit: int | None) -> dict[str, Any]:
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    if dlx:
        args["x-dead-letter-exchange"] = dlx
    if delivery_limit:
        args["x-delivery-limit"] = delivery_limit
    return args


async def declare(channel: AbstractChannel, names: Names) -> Topology:
    """Declare every exchange and queue of the contract; safe to run on every start."""
    events = await channel.declare_exchange(
        names.events, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dlx = await channel.declare_exchange(names.dlx, aio_pika.ExchangeType.FANOUT, durable=True)
    dlq = await channel.declare_queue(names.dlq, durable=True, arguments=_quorum(None, None))
    await dlq.bind(dlx)
    requests = await channel.declare_queue(
        names.requests, durable=True, arguments=_quorum(names.dlx, DELIVERY_LIMIT)
    )
    control = await channel.declare_queue(
        names.control, durable=True, arguments=_quorum(names.dlx, DELIVERY_LIMIT)
    )
    # An addition to the default exchange: a direct exchange named like the queue, routing
    # only to it. A strategy user allowed to write to it alone (and not to the default
    # exchange, which routes to every queue) cannot reach N.control: README, Risk and access.
    entry = await channel.declare_exchange(names.requests, aio_pika.ExchangeType.DIRECT,
                                           durable=True)
    await requests.bind(entry, routing_key=names.requests)
    return Topology(requests=requests, control=control, dlq=dlq, events=events, dlx=dlx)


async def delete_all(channel: AbstractChannel, names: Names) -> None:
    """Remove a namespace (test clean-up). Quorum queues refuse if_unused, so both are off."""
    for queue in names.queues:
        await channel.queue_delete(queue, if_unused=False, if_empty=False)
    for exchange in (names.events, names.dlx, names.requests):
        await channel.exchange_delete(exchange)
