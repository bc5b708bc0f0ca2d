"""kill -9 while orders are filling: fills the broker made but the worker had not recorded are
applied after the restart, none twice, and the figures add up exactly.

The sim broker fills 2 shares every 100 ms and writes each fill to its ledger before it pushes
it. The worker is killed right after its first fill event; the order then fills completely at
the broker while the worker is down (written to the broker's ledger, as the sim would have, so
the database is behind the broker whatever moment the kill hit). The restarted worker's sim
reloads its ledger and the worker's start-up reconciliation looks every working order up.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.support.db_probe import DbProbe
from tests.support.harness import Harness, submit_body
from tests.support.harness import worker_settings as harness_settings
from tests.support.invariants import check
from tests.support.worker_process import WorkerProcess, stop_all, worker_env
from worker.brokers.sim import read_fills
from worker.store.tables import fills, parents, slices

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

QTY = 20  # two slices of 10, each filling 2 shares at a time
ASK = Decimal("190.27")  # AAPL=190.25 with a 2 bps spread


async def test_kill_9_between_the_brokers_fills_and_their_record_loses_nothing(
    database_url: str, amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "broker-ledger.jsonl"
    env = worker_env(amqp_url, database_url, namespace, ledger, sim_prices="AAPL=190.25",
                     sim_fill_qty=2, sim_fill_interval_ms=100, reconcile_seconds=1)
    harness = Harness(harness_settings(amqp_url, database_url, namespace))
    await harness.open()
    probe = DbProbe(database_url)
    first = second = None
    try:
        first = await WorkerProcess(env, tmp_path / "run1.log").start()
        await first.wait_ready()
        cid = await harness.publish(submit_body(
            strategy_id="fillcrash", qty=QTY, duration_seconds=2, interval_seconds=1,
            slice_end="keep", keep_working_after_end=True, request_id=uuid.uuid4().hex),
            reply=True)
        pid = (await harness.reply_for(cid))["parent_order_id"]
        await harness.events.wait_for(
            lambda: harness.events.of("slice.fill", parent_order_id=pid), timeout=20)
        first.kill()
        await first.wait()
        recorded = await _filled(probe, pid)
        # Meanwhile, at the broker: the working order fills completely.
        for coid, filled in _ledger_filled(ledger).items():
            if filled < 10:
                with ledger.open("a") as f:
                    f.write(json.dumps({"event": "update", "client_order_id": coid,
                                        "status": "filled", "filled_qty": 10,
                                        "avg_fill_price": str(ASK), "reason": None,
                                        "at": datetime.now(UTC).isoformat()}) + "\n")
        at_broker = _ledger_filled(ledger)
        assert sum(at_broker.values()) > recorded, (recorded, at_broker)
        await asyncio.sleep(0.3)

        second = await WorkerProcess(env, tmp_path / "run2.log").start()
        await second.wait_ready()
        done = await harness.events.wait_for(
            lambda: harness.events.of("parent.completed", parent_order_id=pid), timeout=30)
        assert (done[0]["outcome"], done[0]["filled_qty"]) == ("filled", QTY)
        assert Decimal(done[0]["notional"]) == ASK * QTY

        async with probe.engine.connect() as conn:
            rows = (await conn.execute(
                select(fills.c.client_order_id, fills.c.filled_qty, fills.c.fill_qty,
                       fills.c.fill_price).where(fills.c.parent_order_id == pid))).all()
            per_slice = (await conn.execute(
                select(slices.c.status, slices.c.filled_qty)
                .where(slices.c.parent_order_id == pid))).all()
        assert sorted(per_slice) == [("filled", 10), ("filled", 10)]
        by_order: dict[str, list[tuple[int, int]]] = {}
        for coid, cumulative, qty, price in rows:
            by_order.setdefault(coid, []).append((cumulative, qty))
            assert Decimal(price) == ASK
        for coid, applied in by_order.items():
            applied.sort()
            # each cumulative figure once, each fill the step from the one before it
            assert [c for c, _ in applied][-1] == 10 and sum(q for _, q in applied) == 10, coid
        figures = await check(probe, ledger, "fillcrash")
        assert not figures.broken and figures.duplicates == 0, figures.summary()
        print(f"kill -9 with {recorded} of {sum(at_broker.values())} shares recorded; "
              f"after restart {QTY} filled, {len(rows)} fills applied")
    finally:
        await stop_all(first, second)
        await harness.close()
        await probe.close()


async def _filled(probe: DbProbe, pid: str) -> int:
    async with probe.engine.connect() as conn:
        return int((await conn.execute(
            select(parents.c.filled_qty).where(parents.c.parent_order_id == pid))).scalar_one())


def _ledger_filled(ledger: Path) -> dict[str, int]:
    """Each order's last cumulative filled qty, as the broker's ledger has it."""
    out: dict[str, int] = {}
    for line in read_fills(ledger):
        out[line["client_order_id"]] = int(line["filled_qty"])
    return out
