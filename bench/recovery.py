"""recovery: kill -9 a worker holding N parents (30 pending slices each), restart it, time how
soon the first slice reaches the broker and how soon every parent's job is rebuilt.

Most parents start an hour ahead. A few probe parents, published last, fall due while the
worker is down: their first slices go out as soon as the restarted worker has re-armed them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

from bench.environment import Services
from bench.loading import progress, publish_and_wait
from bench.report import Result
from bench.run import bench_run
from bench.workload import submit
from worker.brokers.sim import read_ledger

NAME = "recovery"


@dataclass(frozen=True)
class Params:
    parents: int = 10_000
    slices: int = 30
    interval: int = 60
    probes: int = 50  # of the parents, the ones due while the worker is down
    down_after_due: float = 1.0  # restart this long after the probes fell due


FULL = Params()
QUICK = Params(parents=1_000)


def _ts(line: dict[str, object]) -> float:
    return datetime.fromisoformat(str(line["ts"])).timestamp()


async def _first_receipt_after(path: object, after: float, within: float) -> float | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        times = [
            float(x["received_at"])
            for x in read_ledger(path)  # type: ignore[arg-type]
            if float(x["received_at"]) >= after
        ]
        if times:
            return min(times)
        await asyncio.sleep(0.05)
    return None


async def run(services: Services, quick: bool, params: Params) -> Result:
    async with bench_run(
        NAME, quick, services, bindings=["parent.accepted.#", "request.#"], keep_bodies=set()
    ) as r:
        await r.start_worker()
        later = time.time() + 3600
        bodies = [
            submit(r.run_id, k, start_at=later, slices=params.slices, interval=params.interval)
            for k in range(params.parents - params.probes)
        ]
        loaded = await publish_and_wait(r, bodies)
        due = time.time() + 2.0
        probes = [
            submit(
                r.run_id,
                params.parents + k,
                start_at=due,
                slices=params.slices,
                interval=params.interval,
            )
            for k in range(params.probes)
        ]
        probed = await publish_and_wait(r, probes, within=30)
        if time.time() >= due:
            progress("the probes were accepted after they fell due: their slices went out early")
        r.worker.kill()
        killed_at = time.time()
        early = len(read_ledger(r.ledger_path))
        parents = loaded.accepted + probed.accepted
        progress(f"killed with {parents:,} parents ({early} slices sent before the kill)")
        await asyncio.sleep(max(0.0, due + params.down_after_due - time.time()))
        since = r.worker.mark()
        started = r.worker.start()
        done = await r.worker.wait_log("recovery.done", since=since, within=120)
        stats = await r.worker.wait_log("scheduler.stats", since=since, within=30)
        first = await _first_receipt_after(r.ledger_path, started, 60)
        ready = await r.worker.wait_log("amqp.connected", since=since, within=60)
        memory = r.worker.memory_mib()
    rebuilt = _ts(stats) - started
    first_sent = first - started if first is not None else None
    result = Result(NAME, r.database.kind, quick)
    result.counts = {
        "parents": parents,
        "pending_slices": parents * params.slices,
        "rebuilt_parents": int(done["parents"]),
        "parent_jobs": stats["parent_jobs"],
        "expired": int(done["expired"]),
        "resumed": int(done["resumed"]),
        "sent_before_kill": early,
    }
    result.timings_s = {
        "down": round(started - killed_at, 2),
        "first_slice_sent": round(first_sent, 3) if first_sent is not None else -1,
        "jobs_rebuilt": round(rebuilt, 3),
        "amqp_ready": round(_ts(ready) - started, 3),
    }
    result.rss_mib = memory
    result.lines = [
        f"{parents:,} parents, {parents * params.slices:,} slices; killed -9, "
        f"restarted {started - killed_at:.1f} s later",
        f"first slice at the broker {first_sent if first_sent is not None else float('nan'):.3f}"
        f" s after the process started",
        f"{stats['parent_jobs']:,} parent jobs rebuilt {rebuilt:.3f} s after start "
        f"(recovery.done: {done['parents']} parents, {done['expired']} expired, "
        f"{done['resumed']} resumed); consuming requests after {result.timings_s['amqp_ready']} s",
        f"RSS after recovery {memory['rss']} MiB",
    ]
    result.target("first slice sent s", first_sent, 3)
    result.target("every job rebuilt s", rebuilt, 5)
    result.no_floor(
        "absolute: an availability promise (first slice <= 3 s, every job <= 5 s after a "
        "restart) that must hold on the machine deployed; its I/O is one read of the pending "
        "slices, a one-off time rather than a rate"
    )
    if stats["active_parents"] < parents:
        result.notes.append(f"only {stats['active_parents']} of {parents} parents re-armed")
    return result
