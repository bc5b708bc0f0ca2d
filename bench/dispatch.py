"""dispatch: R slices/s due for D seconds, spread evenly; lateness = broker receipt - due time.

Parent k starts at T0 + k/R and fires every `interval` seconds, so with R x interval parents
the due times cover [T0, T0 + D) at exactly R per second.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.environment import Services
from bench.loading import progress, publish_and_wait
from bench.report import Result, percentiles
from bench.run import bench_run
from bench.workload import planned_slices, submit
from worker.brokers.sim import read_ledger

NAME = "dispatch"
PROBLEMS = (
    "slice.expired",
    "slice.failed",
    "slice.rejected",
    "slice.blocked_kill_switch",
    "slice.blocked_circuit_breaker",
)


@dataclass(frozen=True)
class Params:
    rate: int = 500
    seconds: int = 60
    slices: int = 30  # per parent; interval = seconds / slices


FULL = Params()
QUICK = Params(rate=100, seconds=15, slices=15)


async def run(services: Services, quick: bool, params: Params) -> Result:
    interval = params.seconds // params.slices
    parents = params.rate * interval
    bindings = [
        "parent.accepted.#",
        "parent.completed.#",
        "request.#",
        *(f"{p}.#" for p in PROBLEMS),
    ]
    async with bench_run(
        NAME, quick, services, bindings=bindings, keep_bodies={"parent.accepted"}
    ) as r:
        await r.start_worker()
        lead = 4 + parents / 200  # time to accept every parent before the first is due
        t0 = time.time() + lead
        bodies = [
            submit(
                r.run_id, k, start_at=t0 + k / params.rate, slices=params.slices, interval=interval
            )
            for k in range(parents)
        ]
        loaded = await publish_and_wait(r, bodies, within=lead + params.seconds)
        late_setup = (loaded.last_accepted or t0) > t0
        progress(
            f"{parents:,} parents, {parents * params.slices:,} slices due at "
            f"{params.rate}/s for {params.seconds} s"
        )
        await asyncio.sleep(max(0.0, t0 - time.time()))
        cpu_before, window_start = r.worker.cpu_seconds(), time.time()
        done = await r.events.wait_until(
            lambda: r.events.count("parent.completed") >= loaded.accepted,
            max(0.0, t0 + params.seconds - time.time()) + 60,
        )
        cpu = r.worker.cpu_seconds() - cpu_before
        busy_pct = 100 * cpu / max(time.time() - window_start, 1e-9)
        memory = r.worker.memory_mib()
        ledger = read_ledger(r.ledger_path)
    due: dict[str, float] = {}
    for arrival in r.events.arrivals["parent.accepted"]:
        assert arrival.body is not None
        due.update(planned_slices(arrival.body)[1])
    received: dict[str, float] = {}
    duplicates = 0
    for line in ledger:
        coid = str(line["client_order_id"])
        if coid in received:
            duplicates += 1
        received.setdefault(coid, float(line["received_at"]))  # type: ignore[arg-type]
    lateness = [(received[c] - t) * 1000 for c, t in due.items() if c in received]
    missed = sum(1 for c in due if c not in received)
    problems = {p: r.events.count(p) for p in PROBLEMS if r.events.count(p)}
    lat = percentiles(lateness)
    window = (max(received.values()) - min(received.values())) if received else 0.0

    result = Result(NAME, r.database.kind, quick)
    result.counts = {
        "parents": loaded.accepted,
        "slices_due": len(due),
        "sent": len(lateness),
        "missed": missed,
        "duplicates": duplicates,
        "completed_parents": r.events.count("parent.completed"),
        **problems,
    }
    result.rates = {
        "target_slices_per_s": params.rate,
        "sent_per_s": round(len(received) / window, 1) if window else 0.0,
        "worker_cpu_pct": round(busy_pct, 1),
    }
    result.percentiles = {"lateness_ms": lat}
    result.rss_mib = memory
    result.lines = [
        f"{len(due):,} slices of {loaded.accepted:,} parents due at {params.rate}/s for "
        f"{params.seconds} s; sent {len(lateness):,}, missed {missed}, duplicates {duplicates}",
        "lateness ms: " + ", ".join(f"{k} {v}" for k, v in lat.items()),
        f"worker CPU {cpu:.1f} s from the first due time to the last completion "
        f"({result.rates['worker_cpu_pct']}% of a core); "
        f"RSS {memory['rss']} MiB",
    ]
    if problems:
        result.lines.append(f"slice problems: {problems}")
    if late_setup:
        result.notes.append("some parents were accepted after their first slice was due")
    if not done:
        result.notes.append("not every parent completed within the wait")
    result.target("lateness p50 ms", lat.get("p50"), 2)
    result.target("lateness p99 ms", lat.get("p99"), 10)
    result.target("lateness max ms", lat.get("max"), 100)
    result.target("missed slices", missed + sum(problems.values()), 0)
    return result
