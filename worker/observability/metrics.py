"""Every Prometheus metric of one worker, in a registry the worker owns.

A registry per worker (not prometheus_client's global one) lets tests run several workers in
one process. Labels stay small and bounded: outcomes, statuses, broker operations; never ids.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from twap_schemas.common import SliceStatus

# From 1 ms to 10 s: lateness is milliseconds when all is well, seconds when the loop stalls.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_OUTCOMES = ("accepted", "duplicate", "canceled", "rejected", "requeued", "retried")
TERMINAL_STATUSES = tuple(
    s.value for s in SliceStatus if s not in {SliceStatus.SCHEDULED, SliceStatus.SUBMITTING}
)
BROKER_OPERATIONS = ("submit", "find", "cancel", "quote")


class WorkerMetrics:
    """The metrics, and the few calls the runtime makes to move them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "twap_requests", "Requests taken off N.requests, by outcome", ["outcome"], registry=r
        )
        self.slices = Counter(
            "twap_slices",
            "Slices that reached a terminal status, by status",
            ["status"],
            registry=r,
        )
        self.retries = Counter(
            "twap_slice_retries", "Broker attempts beyond the first, over all slices", registry=r
        )
        self.lateness = Histogram(
            "twap_slice_lateness_seconds",
            "Submitted slices: from due time to sent to the broker",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.gc_pauses = Histogram(
            "twap_gc_pause_seconds",
            "Garbage collector passes (the event loop stands still meanwhile), by generation",
            ["generation"],
            buckets=(0.0005, *LATENCY_BUCKETS),
            registry=r,
        )
        self.heap_trims = Histogram(
            "twap_heap_trim_seconds",
            "Trims of the C heap at quiet moments (the event loop stands still meanwhile)",
            buckets=(0.0005, *LATENCY_BUCKETS),
            registry=r,
        )
        self.broker_calls = Histogram(
            "twap_broker_call_seconds",
            "Broker calls by operation and result",
            ["operation", "result"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.active_parents = Gauge(
            "twap_active_parents", "Parents with a slice still to fire in this worker", registry=r
        )
        self.in_flight = Gauge(
            "twap_slices_in_flight", "Slices between their claim and their outcome", registry=r
        )
        self.in_flight_limit = Gauge(
            "twap_slices_in_flight_limit",
            "Most slices allowed between claim and outcome (TWAP_MAX_IN_FLIGHT or derived)",
            registry=r,
        )
        self.waiting = Gauge(
            "twap_slices_waiting",
            "Slices due and waiting for an in-flight slot, served in order of due time",
            registry=r,
        )
        self.expired_waiting = Counter(
            "twap_slices_expired_waiting",
            "Slices whose grace ran out while they waited for an in-flight slot (never sent)",
            registry=r,
        )
        self.errors = Counter(
            "twap_errors",
            "Unexpected errors on the slice path, by log event and exception class",
            ["event", "error"],
            registry=r,
        )
        self.unresolved = Gauge(
            "twap_slices_unresolved",
            "Claimed slices whose order the broker could not be asked about yet: they stay "
            "submitting and are looked up again until it answers",
            registry=r,
        )
        self.pending_slices = Gauge(
            "twap_pending_slices", "Slices scheduled or submitting, per the database", registry=r
        )
        self.kill_switch = Gauge(
            "twap_kill_switch_engaged", "1 while the kill switch is engaged", registry=r
        )
        self.breaker = Gauge(
            "twap_circuit_breaker_tripped", "1 while the circuit breaker is tripped", registry=r
        )
        self.breaker_failures = Gauge(
            "twap_breaker_consecutive_failures",
            "Consecutive failed slices (trips at the limit)",
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "twap_outbox_backlog",
            "Events and replies committed but not yet published",
            registry=r,
        )
        self.outbox_published = Counter(
            "twap_outbox_published", "Outbox messages published and confirmed", registry=r
        )
        self.amqp_connected = Gauge(
            "twap_amqp_connected", "1 while the connection to RabbitMQ is open", registry=r
        )
        self.amqp_consuming = Gauge(
            "twap_amqp_consuming", "1 while the N.requests consumer is attached", registry=r
        )
        self.database_up = Gauge(
            "twap_database_up", "1 when the last database read succeeded", registry=r
        )
        self.leader = Gauge(
            "twap_worker_active", "1 when this process holds leadership (0: standby)", registry=r
        )
        self.fills = Counter(
            "twap_fills", "Fills applied (each increment of a slice's filled qty)", registry=r
        )
        self.filled_shares = Counter(
            "twap_filled_shares", "Shares filled, over all slices", registry=r
        )
        self.working_orders = Gauge(
            "twap_working_orders",
            "Orders working at the broker (slices submitted, not yet filled or closed), as of "
            "the last reconciliation pass",
            registry=r,
        )
        self.reconcile_lag = Gauge(
            "twap_reconcile_lag_seconds",
            "At the last reconciliation pass, the longest time since a working order was "
            "last heard from, an update or a lookup's answer (how long the worker may not "
            "have known an order's state)",
            registry=r,
        )
        self.fills_after_end = Counter(
            "twap_fills_after_end",
            "Slices whose order the broker reports filled beyond what the slice held when it "
            "ended (an order the worker had closed still executed); each slice counted once",
            registry=r,
        )
        self.bad_broker_views = Counter(
            "twap_bad_broker_views",
            "Broker views of an order that could not be applied (more filled than the qty, a "
            "fill without a price); each distinct view of a slice counted once",
            registry=r,
        )
        self._prime()

    def filled(self, fill_qty: int) -> None:
        """A fill was applied."""
        self.fills.inc()
        self.filled_shares.inc(fill_qty)

    def _prime(self) -> None:
        """Create every labelled series at zero, so rate() works from the first scrape."""
        for outcome in REQUEST_OUTCOMES:
            self.requests.labels(outcome)
        for status in TERMINAL_STATUSES:
            self.slices.labels(status)
        for operation in BROKER_OPERATIONS:
            self.broker_calls.labels(operation, "ok")

    # -- what the runtime calls ------------------------------------------------------------
    def request(self, outcome: str, count: int = 1) -> None:
        if count:
            self.requests.labels(outcome).inc(count)

    def slices_ended(self, status: SliceStatus | str, count: int = 1) -> None:
        """`count` slices reached `status` outside the executor (cancel, sweep, recovery)."""
        if count:
            self.slices.labels(str(status)).inc(count)

    def slice_recorded(
        self, status: SliceStatus, attempts: int, due: datetime, sent_at: datetime | None
    ) -> None:
        """The executor recorded a slice's outcome."""
        self.slices.labels(status.value).inc()
        if attempts > 1:
            self.retries.inc(attempts - 1)
        if status is SliceStatus.SUBMITTED and sent_at is not None:
            self.lateness.observe(max(0.0, (sent_at - due).total_seconds()))

    def error(self, event: str, error: str) -> None:
        self.errors.labels(event, error).inc()

    def broker_call(self, operation: str, result: str, seconds: float) -> None:
        self.broker_calls.labels(operation, result).observe(seconds)

    def switch(self, name: str, engaged: bool) -> None:
        (self.kill_switch if name == "kill_switch" else self.breaker).set(1 if engaged else 0)
