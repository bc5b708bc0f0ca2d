"""Readiness: leadership held, RabbitMQ consumer attached, database answering, scheduler running.

Liveness is simpler: if the event loop can answer /healthz, the process is alive.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.app import Worker

DB_PING_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Check:
    part: str
    ok: bool
    detail: str


async def readiness(worker: Worker, db_wait: float = DB_PING_TIMEOUT) -> list[Check]:
    """Every part, checked now; the database with a short timeout."""
    if worker.stopping:
        leadership = Check("leadership", False, "draining: the worker is stopping")
    elif worker.active.is_set():
        leadership = Check("leadership", True, "active")
    else:
        leadership = Check("leadership", False, "standby: another worker holds the database")
    return [
        leadership,
        _amqp(worker),
        await _database(worker, db_wait),
        Check(
            "scheduler",
            worker.scheduler.running,
            "running" if worker.scheduler.running else "not running",
        ),
    ]


def _amqp(worker: Worker) -> Check:
    if not worker.link.connected:
        return Check("amqp", False, "not connected to RabbitMQ")
    if not worker.requests_consumer.attached:
        return Check("amqp", False, f"no consumer on {worker.names.requests}")
    return Check("amqp", True, f"consuming {worker.names.requests}")


async def _database(worker: Worker, wait: float) -> Check:
    try:
        await asyncio.wait_for(worker.store.ping(), wait)
    except TimeoutError:
        return Check("database", False, f"no answer within {wait:g} s")
    except Exception as exc:
        return Check("database", False, f"{type(exc).__name__}: {str(exc)[:200]}")
    return Check("database", True, f"{worker.store.dialect} answers")
