"""A silent network under the leadership lock: the active worker's lock connection stops
forwarding without closing (a stateful firewall forgetting the long-idle connection), its
other connections still work, PostgreSQL then drops the lock's session and a standby takes
the lock. At no moment may both workers claim slices."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests.observability.pausable_proxy import PausableProxy
from tests.support.db_probe import DbProbe
from tests.support.harness import Harness, submit_body
from tests.support.harness import worker_settings as harness_settings
from tests.support.invariants import check
from worker.app import Worker
from worker.brokers.sim import SimBroker
from worker.store.leadership import CHECK_TIMEOUT, SERVER_DROP_SECONDS

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

# One a second. The takeover comes about 9 s after the pause (SERVER_DROP_SECONDS, then the
# standby's next try): the first worker claims the first slices, the second the rest, late
# ones included (within the misfire grace), whatever the timing.
SLICES = 10

# The session holding an advisory lock in the test's database: the active worker's lock.
HOLDER = text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database())"
)


class Timeline:
    """When each worker claimed, when the first lost its lock, when the second took it."""

    def __init__(self) -> None:
        self.claims: list[tuple[float, str]] = []
        self.lost_at: float | None = None
        self.taken_at: float | None = None
        self.first_leading_when_taken: bool | None = None
        self.standing_by = asyncio.Event()


def track(monkeypatch: pytest.MonkeyPatch, first: Worker, second: Worker, tl: Timeline) -> None:
    for who, worker in (("first", first), ("second", second)):
        claim = worker.store.claim

        async def claimed(*args: Any, _claim: Any = claim, _who: str = who) -> Any:
            result = await _claim(*args)
            if result is not None:
                tl.claims.append((time.monotonic(), _who))
            return result

        monkeypatch.setattr(worker.store, "claim", claimed)

    still_held = first.leadership.still_held

    async def checked() -> bool:
        held = await still_held()
        if not held and tl.lost_at is None:
            tl.lost_at = time.monotonic()
        return held

    monkeypatch.setattr(first.leadership, "still_held", checked)
    try_lock: Callable[[], Awaitable[bool]] = second.leadership._try_advisory

    async def tried() -> bool:
        got = await try_lock()
        if got and tl.taken_at is None:
            tl.taken_at = time.monotonic()
            tl.first_leading_when_taken = first.executor.leading()
        tl.standing_by.set()
        return got

    monkeypatch.setattr(second.leadership, "_try_advisory", tried)


async def test_silent_lock_connection_stops_claims_before_the_standby_takes_over(
    pg_db: str, amqp_url: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lock session silent, then dropped by PostgreSQL: the first worker stopped claiming
    before the standby got the lock, never claims after it, stops; no order twice."""
    # A short drain: the taken-over worker's slice tasks wait for a leadership that is gone.
    settings = harness_settings(amqp_url, pg_db, namespace, shutdown_timeout_seconds=3)
    ledger = tmp_path / "broker-ledger.jsonl"
    url = make_url(pg_db)
    proxy = PausableProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    harness = Harness(settings)
    await harness.open()
    probe = DbProbe(pg_db)
    admin = create_async_engine(pg_db)
    first = Worker(settings, broker=SimBroker(ledger_path=ledger))
    # Only the lock's connection goes through the proxy; claims and intake reach the database.
    first.leadership.url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False
    )
    second = Worker(settings, broker=SimBroker(ledger_path=ledger))
    tl = Timeline()
    track(monkeypatch, first, second, tl)
    first_task = asyncio.create_task(first.run())
    second_task: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(
            asyncio.gather(first.recovered.wait(), first.link.ready.wait()), 20
        )
        second_task = asyncio.create_task(second.run())
        await asyncio.wait_for(tl.standing_by.wait(), 20)
        assert tl.taken_at is None, "the standby got the lock while the first one held it"

        cid = await harness.publish(
            submit_body(strategy_id="partition", qty=SLICES * 2, duration_seconds=SLICES),
            reply=True,
        )
        pid = (await harness.reply_for(cid))["parent_order_id"]
        await harness.events.wait_for(
            lambda: harness.events.of("slice.submitted", parent_order_id=pid)
        )
        proxy.pause()
        paused_at = time.monotonic()
        # PostgreSQL's keepalives on the lock's session find the silent client gone after
        # SERVER_DROP_SECONDS; through a proxy it cannot see that, so the test drops it then.
        await asyncio.sleep(SERVER_DROP_SECONDS)
        async with admin.connect() as conn:
            holder = (await conn.execute(HOLDER)).scalar_one()
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
        dropped_at = time.monotonic()
        await asyncio.wait_for(second.active.wait(), 10)
        proxy.resume()  # the first worker now finds the lock taken and stops
        await asyncio.wait_for(first_task, 20)

        await harness.events.wait_for(
            lambda: harness.events.of("parent.completed", parent_order_id=pid), timeout=SLICES + 30
        )
        assert tl.taken_at is not None and tl.lost_at is not None
        late = [t - tl.taken_at for t, who in tl.claims if who == "first" and t >= tl.taken_at]
        by = {w: sum(1 for _, who in tl.claims if who == w) for w in ("first", "second")}
        figures = (
            f"first stopped claiming {tl.lost_at - paused_at:.2f} s after its lock connection "
            f"went silent; PostgreSQL dropped the session at {dropped_at - paused_at:.2f} s; "
            f"the standby took the lock at {tl.taken_at - paused_at:.2f} s; claims by first "
            f"{by['first']}, by second {by['second']}, by first after the takeover {len(late)}"
        )
        assert tl.first_leading_when_taken is False, f"two leaders at the takeover; {figures}"
        assert not late, f"first claimed after the takeover at +{late} s; {figures}"
        assert tl.lost_at - paused_at < CHECK_TIMEOUT + 2, figures
        assert by["first"] and by["second"], figures
        assert first.leadership.held is False and first.stopping, figures
        result = await check(probe, ledger, "partition")
        assert result.parents == 1 and not result.broken, f"{figures}; {result.summary()}"
        print(f"silent lock connection: {figures}; {result.summary()}")
    finally:
        proxy.resume()
        for worker in (first, second):
            worker.stop()
        await asyncio.gather(
            *(t for t in (first_task, second_task) if t is not None), return_exceptions=True
        )
        await harness.close()
        await probe.close()
        await admin.dispose()
        await proxy.close()
