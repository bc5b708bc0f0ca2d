"""The client-side rate limiter: calls wait their turn, within the configured rate."""

from __future__ import annotations

import asyncio

import pytest

from worker.brokers.ratelimit import RateLimiter


def test_burst_is_a_tenth_and_never_exceeds_the_limit() -> None:
    """200/min allows a burst of 20; a limit of 1 still allows one call."""
    assert RateLimiter(200, 60).burst == 20
    assert RateLimiter(1, 60).burst == 1


@pytest.mark.parametrize(("calls", "period"), [(0, 60.0), (10, 0.0)])
def test_nonsense_limits_are_refused(calls: int, period: float) -> None:
    """A limit of zero calls or a zero period is a configuration error."""
    with pytest.raises(ValueError):
        RateLimiter(calls, period)


async def test_calls_within_the_burst_do_not_wait() -> None:
    """The first `burst` calls go at once."""
    limiter = RateLimiter(100, 60.0)
    waits = [await limiter.wait("find") for _ in range(limiter.burst)]
    assert limiter.waited_calls == 0
    assert max(waits) < 0.05


async def test_calls_past_the_burst_wait_and_all_go() -> None:
    """Past the burst, every call waits its turn and none fails."""
    limiter = RateLimiter(40, 1.0)  # burst 4, then 36 per second
    await asyncio.gather(*(limiter.wait("submit") for _ in range(7)))
    assert limiter.calls == 7
    assert limiter.waited_calls == 3
