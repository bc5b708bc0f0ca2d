"""What the endpoints read of the running worker: a snapshot of its parts and two database
reads. The worker provides them (`Observed`); observability never imports the worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from worker.observability.metrics import WorkerMetrics
    from worker.store.gauge_ops import StoreGauges


@dataclass(frozen=True, slots=True)
class Snapshot:
    stopping: bool
    leading: bool
    amqp_connected: bool
    consuming: bool  # a consumer is attached to the requests queue
    requests_queue: str
    scheduler_running: bool
    active_parents: int
    in_flight: int  # slices between their claim and their outcome (the admission gate)
    waiting: int  # slices due and waiting for a slot at the gate
    published: int  # outbox messages the relay published since the start


class Observed(Protocol):
    @property
    def metrics(self) -> WorkerMetrics: ...

    def snapshot(self) -> Snapshot: ...

    async def ping_database(self) -> str:
        """The database's name once it answered; raises when it does not."""
        ...

    async def read_gauges(self) -> StoreGauges: ...
