"""Putting parents into the worker the way strategies do: publish, wait for parent.accepted."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from bench.run import Run


@dataclass(frozen=True, slots=True)
class Loaded:
    requests: int
    accepted: int
    rejected: int
    first_publish: float
    last_confirm: float
    last_accepted: float | None
    worker_cpu_s: float

    @property
    def publish_seconds(self) -> float:
        return self.last_confirm - self.first_publish

    @property
    def intake_seconds(self) -> float | None:
        """First publish to the last parent.accepted received."""
        if self.last_accepted is None:
            return None
        return self.last_accepted - self.first_publish

    @property
    def requests_per_second(self) -> float | None:
        seconds = self.intake_seconds
        return self.accepted / seconds if seconds else None


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


async def publish_and_wait(
    run: Run, bodies: list[bytes], *, within: float | None = None, in_flight: int = 500
) -> Loaded:
    """Publish every request as fast as RabbitMQ confirms, then wait for all the answers."""
    accepted_before = run.events.count("parent.accepted")
    rejected_before = run.events.count("request.rejected")
    cpu_before = run.worker.cpu_seconds()
    expected = len(bodies)
    progress(f"publishing {expected:,} requests")
    first, confirmed = await run.client.publish_many(bodies, in_flight)

    def answered() -> int:
        return (
            run.events.count("parent.accepted")
            - accepted_before
            + run.events.count("request.rejected")
            - rejected_before
        )

    limit = within if within is not None else 60 + expected / 100
    if not await run.events.wait_until(lambda: answered() >= expected, limit):
        progress(f"only {answered():,} of {expected:,} answered within {limit:.0f} s")
    arrivals = run.events.arrivals["parent.accepted"][accepted_before:]
    last = max((a.at for a in arrivals), default=None)
    loaded = Loaded(
        requests=expected,
        accepted=len(arrivals),
        rejected=run.events.count("request.rejected") - rejected_before,
        first_publish=first,
        last_confirm=confirmed,
        last_accepted=last,
        worker_cpu_s=run.worker.cpu_seconds() - cpu_before,
    )
    rate = loaded.requests_per_second
    progress(
        f"{loaded.accepted:,} accepted in {loaded.intake_seconds or 0:.2f} s "
        f"({rate or 0:,.0f}/s), published in {loaded.publish_seconds:.2f} s"
    )
    return loaded


def wait_until_wall(at: float) -> float:
    """Seconds from now until the wall-clock time `at` (never negative)."""
    return max(0.0, at - time.time())
