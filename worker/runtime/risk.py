"""The I/O around the risk rules (core.risk): the reference price from a quote source, the
limits as they are now, and the check before every slice, with its wait for a turn under
max_slices_per_minute.

The reference price is the broker's quote (`quote(symbol)`, its `reference`: mid, else last).
Fetched only when a limit needs it; a quote that fails or has no price makes the check that
needs it refuse (fail closed), with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from twap_schemas.common import SliceStatus
from worker.core.guards import Stop
from worker.core.records import ParentRecord, SliceRecord
from worker.core.risk import Limits, NoPrice, Reference, SliceOrder, check_slice, rate_turn
from worker.runtime.clock import Clock
from worker.store.repository import Store

log = logging.getLogger(__name__)

QUOTE_TIMEOUT = 2.0  # seconds a check waits for a quote before it refuses
LIMITS_TTL = 1.0  # seconds the limits read before a slice are reused (changes here clear it)


class Priced(Protocol):
    @property
    def reference(self) -> Decimal | None: ...


class QuoteSource(Protocol):
    """The part of a broker the risk checks use (the Broker Protocol's `quote`)."""

    async def quote(self, symbol: str) -> Priced: ...


class NoQuotes:
    """A quote source for a broker that gives none: every check that needs a price refuses."""

    def __init__(self, why: str) -> None:
        self.why = why

    async def quote(self, symbol: str) -> Priced:
        raise LookupError(self.why)


def quotes_of(broker: object) -> QuoteSource:
    """The broker itself when it quotes (Broker Protocol v2), else NoQuotes."""
    if callable(getattr(broker, "quote", None)):
        return broker  # type: ignore[return-value]
    return NoQuotes(f"the broker {getattr(broker, 'name', '?')} gives no quotes")


async def reference(source: QuoteSource, symbol: str,
                    within: float = QUOTE_TIMEOUT) -> Reference:
    try:
        quote = await asyncio.wait_for(source.quote(symbol), within)
    except TimeoutError:
        return NoPrice(f"no quote within {within:g} s")
    except Exception as exc:
        return NoPrice(f"quote unavailable: {exc}"[:200])
    price = quote.reference
    if price is None or price <= 0:
        return NoPrice("the quote has no bid/ask and no last price")
    return price


async def references(source: QuoteSource, symbols: Iterable[str],
                     within: float = QUOTE_TIMEOUT) -> dict[str, Reference]:
    wanted = sorted(set(symbols))
    found = await asyncio.gather(*[reference(source, s, within) for s in wanted])
    return dict(zip(wanted, found, strict=True))


@dataclass(slots=True)
class _Cached:
    limits: Limits
    read_at: float


class LimitsCache:
    """The limits that apply to each strategy, read at most every LIMITS_TTL seconds (a read
    before every slice would cost a statement each); a change made here clears it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._limits: dict[str, _Cached] = {}

    def forget(self) -> None:
        self._limits.clear()

    async def of(self, strategies: Iterable[str]) -> dict[str, Limits]:
        now = time.monotonic()
        wanted = set(strategies)
        stale = {s for s in wanted
                 if (c := self._limits.get(s)) is None or now - c.read_at >= LIMITS_TTL}
        if stale:
            for strategy, limits in (await self.store.effective_limits(stale)).items():
                self._limits[strategy] = _Cached(limits, now)
        return {s: self._limits[s].limits for s in wanted}


class SliceRisk:
    """The check before every slice: symbols, collar and slice notional (core.risk), then its
    turn under max_slices_per_minute. A slice over the rate waits for its turn while that
    falls within its grace; else, like a slice over a limit, it ends `blocked_risk`."""

    def __init__(self, store: Store, quotes: QuoteSource, clock: Clock, *,
                 limits: LimitsCache | None = None, quote_timeout: float = QUOTE_TIMEOUT) -> None:
        self.store = store
        self.quotes = quotes
        self.clock = clock
        self.limits = limits if limits is not None else LimitsCache(store)
        self.quote_timeout = quote_timeout

    async def before_slice(self, parent: ParentRecord, record: SliceRecord,
                           grace: timedelta) -> Stop | None:
        """None: the slice may go now (after any wait for its turn); else why it may not."""
        try:
            limits = (await self.limits.of([parent.strategy_id]))[parent.strategy_id]
        except Exception as exc:  # unreadable limits: fail closed
            return Stop(SliceStatus.BLOCKED_RISK, f"risk limits unreadable (fail closed): {exc}"
                        [:500])
        order = SliceOrder(parent.strategy_id, parent.symbol, record.qty, parent.limit_price,
                           parent.stop_price)
        priced = parent.limit_price is not None or parent.stop_price is not None
        price: Reference = NoPrice("not needed")
        if limits.max_notional is not None or (limits.price_collar_bps is not None and priced):
            price = await reference(self.quotes, parent.symbol, self.quote_timeout)
        refusal = check_slice(order, limits, price)
        if refusal is not None:
            return Stop(SliceStatus.BLOCKED_RISK, refusal)
        per_minute = limits.max_slices_per_minute
        if per_minute is None:
            return None
        return await self._turn(parent, record, per_minute, record.scheduled_time + grace)

    async def _turn(self, parent: ParentRecord, record: SliceRecord, per_minute: int,
                    deadline: datetime) -> Stop | None:
        now = self.clock()
        blocked: list[str] = []

        def decide(recent: list[datetime]) -> datetime | None:
            turn = rate_turn(recent, now, per_minute, deadline, parent.strategy_id)
            if turn.reason is not None:
                blocked.append(turn.reason)
            return turn.at

        try:
            at = await self.store.slice_turn(parent.strategy_id, record.client_order_id, now,
                                             decide)
        except Exception as exc:
            return Stop(SliceStatus.BLOCKED_RISK,
                        f"slice rate unreadable (fail closed): {exc}"[:500])
        if at is None:
            return Stop(SliceStatus.BLOCKED_RISK, blocked[0] if blocked else "no turn")
        wait = (at - self.clock()).total_seconds()
        if wait > 0:
            log.info("slice.waiting_turn", extra={
                "parent_order_id": record.parent_order_id, "slice_num": record.slice_num,
                "wait_s": round(wait, 3), "max_slices_per_minute": per_minute})
            await asyncio.sleep(wait)
        return None
