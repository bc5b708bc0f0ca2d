"""Control commands: the kill switch and the circuit breaker, risk limits and grants,
persisted then published.

With authorization on, every one of them needs the operator role, held by the AMQP
`user_id` (validated by RabbitMQ). A refused or invalid command is dead-lettered with a
`request.rejected` saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twap_schemas.control import ControlCommand, GrantsSet, LimitsSet
from twap_schemas.errors import ErrorDetail
from twap_schemas.parse import InvalidMessage, parse_control
from worker.core import events
from worker.core.access import Grant, may_operate
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
        authz: bool = False,
        limits_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.store = store
        self.control_queue = control_queue
        self.clock = clock
        self.notify = notify
        self.authz = authz
        self.limits_changed = limits_changed  # cached limits are read again (runtime.risk)

    async def handle(self, body: bytes, message_id: str | None, correlation_id: str | None,
                     user_id: str | None = None) -> Disposition:
        try:
            command = parse_control(body)
        except InvalidMessage as exc:
            log.warning("control.rejected", extra={"message_id": message_id, "kind": exc.kind})
            return await self._refuse(body, exc.kind, exc.errors, message_id, correlation_id)
        if self.authz:
            try:
                grant = await self.store.grant_of(user_id) if user_id is not None else None
            except Exception as exc:
                if is_outage(exc):
                    return Disposition.RETRY
                raise
            refusal = may_operate(user_id, grant, command.type)
            if refusal is not None:
                log.warning("control.unauthorized", extra={
                    "message_id": message_id, "user_id": user_id, "command": command.type})
                return await self._refuse(
                    body, "unauthorized", [ErrorDetail(loc="properties.user_id", msg=refusal)],
                    message_id, correlation_id)
        if isinstance(command, LimitsSet):
            return await self._write(lambda: self._set_limits(command, user_id))
        if isinstance(command, GrantsSet):
            return await self._write(lambda: self._set_grant(command, user_id))
        return await self._write(lambda: self._switch(command, user_id))

    async def _refuse(self, body: bytes, kind: str, errors: list[ErrorDetail],
                      message_id: str | None, correlation_id: str | None) -> Disposition:
        now = self.clock()
        messages = [
            events.dead_letter(body, kind, errors, self.control_queue, message_id,
                               correlation_id),
            events.request_rejected(errors, message_id=message_id,
                                    correlation_id=correlation_id, at=now),
        ]
        return await self._write(lambda: self.store.write_messages(messages, now))

    async def _switch(self, command: ControlCommand, user_id: str | None) -> None:
        switch, engaged = COMMANDS[command.type]
        changed = await self.store.set_switch(
            switch, engaged, self.clock(), reason=command.reason,
            operator=command.operator or user_id, automatic=False,
        )
        self.metrics.switch(switch, engaged)
        log.warning("control.applied", extra={"command": command.type, "changed": changed,
                                               "reason": command.reason,
                                               "operator": command.operator})

    async def _set_limits(self, command: LimitsSet, user_id: str | None) -> None:
        by = _who(user_id, command.operator)
        old, new = await self.store.set_limits(command.strategy_id, command.changes(), by=by,
                                               reason=command.reason, now=self.clock())
        self.limits_changed()
        log.warning("control.limits_changed", extra={
            "strategy_id": command.strategy_id, "by": by, "reason": command.reason,
            "old": old.to_json() if old is not None else None, "new": new.to_json()})

    async def _set_grant(self, command: GrantsSet, user_id: str | None) -> None:
        by = _who(user_id, command.by)
        grant = Grant.of(command.user, command.strategies, command.actions, command.operator)
        old = await self.store.set_grant(grant, by=by, reason=command.reason, now=self.clock())
        log.warning("control.grants_changed", extra={
            "user": command.user, "by": by, "reason": command.reason,
            "old": old.to_json() if old is not None else None, "new": grant.to_json()})

    async def _write(self, call: Callable[[], Any]) -> Disposition:
        try:
            await call()
        except Exception as exc:
            if is_outage(exc):
                log.warning("control.database_unavailable", extra={"error": str(exc)[:200]})
                return Disposition.RETRY
            log.exception("control.failed")
            return Disposition.REQUEUE
        self.notify()
        return Disposition.ACK


def _who(user_id: str | None, named: str | None) -> str:
    """Who made a change, for the audit: the AMQP user RabbitMQ vouched for, with the name
    the message gives when it differs."""
    if user_id is None:
        return named or "unknown"
    if named is None or named == user_id:
        return user_id
    return f"{user_id} ({named})"
