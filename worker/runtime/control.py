"""Control commands: the kill switch and the circuit breaker, persisted then published."""

from __future__ import annotations

import logging
from collections.abc import Callable

from twap_schemas.parse import InvalidMessage, parse_control
from worker.core import events
from worker.messaging.dispositions import Disposition
from worker.observability.metrics import WorkerMetrics
from worker.runtime.clock import Clock
from worker.store.engine import is_outage
from worker.store.repository import Store
from worker.store.switches import BREAKER, KILL_SWITCH

log = logging.getLogger(__name__)

COMMANDS: dict[str, tuple[str, bool]] = {
    "kill_switch.engage": (KILL_SWITCH, True),
    "kill_switch.release": (KILL_SWITCH, False),
    "breaker.trip": (BREAKER, True),
    "breaker.reset": (BREAKER, False),
}


class ControlService:
    def __init__(
        self, store: Store, control_queue: str, clock: Clock,
        notify: Callable[[], None] = lambda: None,
        *,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.store = store
        self.control_queue = control_queue
        self.clock = clock
        self.notify = notify

    async def handle(self, body: bytes, message_id: str | None,
                     correlation_id: str | None) -> Disposition:
        try:
            command = parse_control(body)
        except InvalidMessage as exc:
            log.warning("control.rejected", extra={"message_id": message_id, "kind": exc.kind})
            now = self.clock()
            messages = [
                events.dead_letter(body, exc.kind, exc.errors, self.control_queue, message_id,
                                   correlation_id),
                events.request_rejected(exc.errors, message_id=message_id,
                                        correlation_id=correlation_id, at=now),
            ]
            return await self._write(lambda: self.store.write_messages(messages, now))
        switch, engaged = COMMANDS[command.type]

        async def apply() -> None:
            changed = await self.store.set_switch(
                switch, engaged, self.clock(), reason=command.reason,
                operator=command.operator, automatic=False,
            )
            self.metrics.switch(switch, engaged)
            log.warning("control.applied", extra={"command": command.type, "changed": changed,
                                                   "reason": command.reason,
                                                   "operator": command.operator})

        return await self._write(apply)

    async def _write(self, call: Callable[[], object]) -> Disposition:
        try:
            await call()  # type: ignore[misc]
        except Exception as exc:
            if is_outage(exc):
                log.warning("control.database_unavailable", extra={"error": str(exc)[:200]})
                return Disposition.RETRY
            log.exception("control.failed")
            return Disposition.REQUEUE
        self.notify()
        return Disposition.ACK
