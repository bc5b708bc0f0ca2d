"""SIGTERM mid-TWAP: in-flight slices finish, the outbox drains, exit 0; the next start goes on
from where it stopped."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.db_probe import DbProbe
from tests.support.harness import Harness, submit_body
from tests.support.harness import worker_settings as harness_settings
from tests.support.invariants import check
from tests.support.worker_process import WorkerProcess, stop_all, worker_env

pytestmark = [pytest.mark.faults, pytest.mark.timeout(90)]

PARENTS = 3
SLICES = 6
SIM_LATENCY_MS = 400  # the broker answers slowly: SIGTERM lands while orders are out


async def test_sigterm_finishes_in_flight_work_and_the_next_start_continues(
    sqlite_db: str, amqp_url: str, namespace: str, tmp_path: Path
) -> None:
    """SIGTERM while slices are at the broker: they are recorded, nothing is lost or resent."""
    ledger = tmp_path / "broker-ledger.jsonl"
    env = worker_env(amqp_url, sqlite_db, namespace, ledger, sim_latency_ms=SIM_LATENCY_MS)
    harness = Harness(harness_settings(amqp_url, sqlite_db, namespace))
    await harness.open()
    probe = DbProbe(sqlite_db)
    first = await WorkerProcess(env, tmp_path / "first.log").start()
    second = WorkerProcess(env, tmp_path / "second.log")
    try:
        await first.wait_ready()
        correlations = [
            await harness.publish(
                submit_body(
                    strategy_id="sigterm",
                    qty=60 + n,
                    duration_seconds=SLICES,
                    interval_seconds=1,
                    request_id=uuid.uuid4().hex,
                ),
                reply=True,
            )
            for n in range(PARENTS)
        ]
        replies = [await harness.reply_for(c) for c in correlations]
        # Aim just after slice 2 of the last parent fired: its order is out at the broker.
        due = max(datetime.fromisoformat(r["slices"][2]["scheduled_time"]) for r in replies)
        await asyncio.sleep(max(0.0, due.timestamp() + 0.1 - time.time()))
        first.terminate()
        code = await first.wait(within=60)
        assert code == 0, f"exit code {code}:\n{first.text()[-2000:]}"

        after_term = _after(first, "worker.draining")
        finished = [line for line in after_term if line["event"] == "slice.submitted"]
        rows = await probe.slices("sigterm")
        left_submitting = [r for r in rows if r.status == "submitting"]
        backlog = await probe.outbox_backlog()
        stopped_with = {s: sum(1 for r in rows if r.status == s) for s in {r.status for r in rows}}
        assert finished, "no slice was in flight at SIGTERM (the test aimed badly)"
        assert not left_submitting and backlog == 0, (
            f"after SIGTERM: {len(left_submitting)} slices left submitting, {backlog} events "
            f"left in the outbox"
        )
        assert not _after(first, "scheduler.in_flight_abandoned")

        await second.start()
        await second.wait_ready()
        await harness.events.wait_for(
            lambda: len(harness.events.of("parent.completed", strategy_id="sigterm")) == PARENTS,
            timeout=SLICES + 20,
        )
        figures = await check(probe, ledger, "sigterm")
        assert figures.parents == PARENTS and not figures.broken, figures.summary()
        assert figures.statuses == {"filled": PARENTS * SLICES}, figures.summary()
        print(
            f"SIGTERM: {len(finished)} in-flight slices finished during the drain, stopped "
            f"with {stopped_with}, outbox left 0; after the restart {figures.summary()}"
        )
    finally:
        await stop_all(first, second)
        await harness.close()
        await probe.close()


def _after(process: WorkerProcess, event: str) -> list[dict[str, object]]:
    lines = process.lines()
    marks = [i for i, line in enumerate(lines) if line.get("event") == event]
    return lines[marks[0] + 1 :] if marks else []
