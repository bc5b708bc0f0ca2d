"""Fills the state gauges when Prometheus scrapes: in-process values every time, the database
at most once per `db_every` seconds (a scrape storm never becomes a query storm)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from worker.observability.metrics import WorkerMetrics
from worker.observability.snapshot import Observed

log = logging.getLogger(__name__)


class StateSampler:
    def __init__(
        self,
        observed: Observed,
        metrics: WorkerMetrics,
        *,
        db_every: float = 5.0,
        db_timeout: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.observed = observed
        self.metrics = metrics
        self.db_every = db_every
        self.db_timeout = db_timeout
        self._monotonic = monotonic
        self._db_read_at: float | None = None
        self._published = 0

    async def refresh(self) -> None:
        w, m = self.observed.snapshot(), self.metrics
        m.leader.set(1 if w.leading else 0)
        m.active_parents.set(w.active_parents)
        m.in_flight.set(w.in_flight)
        m.waiting.set(w.waiting)
        m.amqp_connected.set(1 if w.amqp_connected else 0)
        m.amqp_consuming.set(1 if w.amqp_connected and w.consuming else 0)
        published = w.published
        if published > self._published:
            m.outbox_published.inc(published - self._published)
            self._published = published
        await self._read_database()

    async def _read_database(self) -> None:
        now = self._monotonic()
        if self._db_read_at is not None and now - self._db_read_at < self.db_every:
            return
        self._db_read_at = now  # before the await: a concurrent scrape uses the cached values
        m = self.metrics
        try:
            gauges = await asyncio.wait_for(self.observed.read_gauges(), self.db_timeout)
        except Exception as exc:
            m.database_up.set(0)
            log.debug("metrics.database_read_failed", extra={"error": repr(exc)[:200]})
            return
        m.database_up.set(1)
        m.kill_switch.set(1 if gauges.switches.kill_switch_engaged else 0)
        m.breaker.set(1 if gauges.switches.breaker_tripped else 0)
        m.breaker_failures.set(gauges.switches.consecutive_failures)
        m.outbox_backlog.set(gauges.outbox_backlog)
        m.pending_slices.set(gauges.pending_slices)
