"""Readiness: leadership held, RabbitMQ consumer attached, database answering, scheduler running.

Liveness is simpler: if the event loop can answer /healthz, the process is alive.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from worker.observability.snapshot import Observed, Snapshot

DB_PING_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class Check:
    part: str
    ok: bool
    detail: str


async def readiness(observed: Observed, db_wait: float = DB_PING_TIMEOUT) -> list[Check]:
    """Every part, checked now; the database with a short timeout."""
    now = observed.snapshot()
    if now.stopping:
        leadership = Check("leadership", False, "draining: the worker is stopping")
    elif now.leading:
        leadership = Check("leadership", True, "active")
    else:
        leadership = Check("leadership", False, "standby: another worker holds the database")
    return [
        leadership,
        _amqp(now),
        await _database(observed, db_wait),
        Check(
            "scheduler",
            now.scheduler_running,
            "running" if now.scheduler_running else "not running",
        ),
    ]


def _amqp(now: Snapshot) -> Check:
    if not now.amqp_connected:
        return Check("amqp", False, "not connected to RabbitMQ")
    if not now.consuming:
        return Check("amqp", False, f"no consumer on {now.requests_queue}")
    return Check("amqp", True, f"consuming {now.requests_queue}")


async def _database(observed: Observed, wait: float) -> Check:
    try:
        name = await asyncio.wait_for(observed.ping_database(), wait)
    except TimeoutError:
        return Check("database", False, f"no answer within {wait:g} s")
    except Exception as exc:
        return Check("database", False, f"{type(exc).__name__}: {str(exc)[:200]}")
    return Check("database", True, f"{name} answers")
