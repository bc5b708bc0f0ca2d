"""Client-side rate limit for broker calls: a call waits for its turn instead of failing."""

from __future__ import annotations

import logging
import time

from aiolimiter import AsyncLimiter

log = logging.getLogger(__name__)

WAIT_EVENT = "broker.rate_limit_wait"


class RateLimiter:
    """At most `max_calls` calls start in any window of `period` seconds.

    A leaky bucket (aiolimiter) holding a burst of a tenth of the limit that drains at the
    rest of it: 200/min gives a burst of 20, then an even 180/min, so no 60-second window ever
    sees more than 200 calls. One instance per event loop, shared by every call of a broker.
    """

    def __init__(self, max_calls: int, period: float = 60.0, *, log_after: float = 0.1) -> None:
        if max_calls < 1 or period <= 0:
            raise ValueError("a rate limit needs max_calls >= 1 and period > 0")
        self.max_calls = max_calls
        self.period = period
        self.log_after = log_after
        self.burst = max(1, max_calls // 10)
        sustained = max_calls - self.burst if max_calls > self.burst else max_calls
        # aiolimiter drains `max_rate` per `time_period`; scale the period so the bucket holds
        # `burst` and drains at `sustained` calls per `period`.
        self._bucket = AsyncLimiter(self.burst, period * self.burst / sustained)
        self.calls = 0
        self.waited_calls = 0

    async def wait(self, op: str, client_order_id: str | None = None) -> float:
        """Wait for this call's turn; return how long it waited, in seconds."""
        blocked = not self._bucket.has_capacity()
        started = time.monotonic()
        await self._bucket.acquire()
        waited = time.monotonic() - started
        self.calls += 1
        if blocked:
            self.waited_calls += 1
        if waited > self.log_after:
            log.info(
                "%s op=%s client_order_id=%s waited_ms=%.0f",
                WAIT_EVENT,
                op,
                client_order_id,
                waited * 1000,
                extra={
                    "event": WAIT_EVENT,
                    "op": op,
                    "client_order_id": client_order_id,
                    "waited_ms": round(waited * 1000),
                },
            )
        return waited
