"""capacity: N active parents of 30 pending slices each; the worker's RSS and scheduler jobs."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.environment import Services
from bench.loading import progress, publish_and_wait
from bench.report import Result
from bench.run import bench_run
from bench.workload import submit

NAME = "capacity"


@dataclass(frozen=True)
class Params:
    parents: int = 10_000
    slices: int = 30
    settle_seconds: float = 3.0


FULL = Params()
QUICK = Params(parents=1_000, settle_seconds=2.0)


async def run(services: Services, quick: bool, params: Params) -> Result:
    async with bench_run(
        NAME, quick, services, bindings=["parent.accepted.#", "request.#"], keep_bodies=set()
    ) as r:
        await r.start_worker()
        idle = r.worker.memory_mib()
        start = time.time() + 7200  # pending for the whole run
        bodies = [
            submit(r.run_id, i, start_at=start, slices=params.slices) for i in range(params.parents)
        ]
        loaded = await publish_and_wait(r, bodies)
        since = r.worker.mark()
        stats = await r.worker.wait_log(
            "scheduler.stats",
            lambda line: line["active_parents"] >= loaded.accepted,
            since=since,
            within=30,
        )
        progress(f"settling {params.settle_seconds:.0f} s before reading memory")
        await asyncio.sleep(params.settle_seconds)
        memory = r.worker.memory_mib()
        stats = await r.worker.wait_log("scheduler.stats", since=r.worker.mark(), within=10)
    result = Result(NAME, r.database.kind, quick)
    pending = loaded.accepted * params.slices
    result.counts = {
        "parents": loaded.accepted,
        "pending_slices": pending,
        "active_parents": stats["active_parents"],
        "job_count": stats["job_count"],
        "parent_jobs": stats["parent_jobs"],
    }
    result.rss_mib = {**memory, "idle": idle["rss"]}
    per_parent = (memory["rss"] - idle["rss"]) * 1024 / max(loaded.accepted, 1)
    result.rates = {
        "requests_per_s": round(loaded.requests_per_second or 0, 1),
        "kib_per_parent": round(per_parent, 2),
    }
    result.lines = [
        f"{loaded.accepted:,} active parents, {pending:,} pending slices",
        f"worker RSS {memory['rss']} MiB (idle before intake {idle['rss']} MiB, peak "
        f"{memory['peak']} MiB): {per_parent:.1f} KiB per parent above idle",
        f"APScheduler jobs {stats['job_count']:,}: {stats['parent_jobs']:,} parent jobs + "
        f"{stats['job_count'] - stats['parent_jobs']} maintenance jobs",
        f"intake while loading: {loaded.requests_per_second or 0:,.0f} requests/s",
    ]
    result.target("worker RSS MiB", memory["rss"], 150)
    result.target("parent jobs / parents", stats["parent_jobs"] / max(loaded.accepted, 1), 1.0)
    result.no_floor(
        "absolute: memory (RSS) held per active parent, bounded by the machine's memory budget; "
        "no I/O rate sets it"
    )
    return result
