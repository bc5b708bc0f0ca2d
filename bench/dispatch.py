"""dispatch: the sustained rate, the highest number of slices per second the worker sends
with lateness p99 <= 50 ms and none missed; lateness = broker receipt - due time.

A step offers R slices/s for D seconds: parent k starts at T0 + k/R and fires every
`interval` seconds, so R x interval parents cover [T0, T0 + D) at exactly R per second. The
search doubles R from `start_rate` while steps pass, then bisects between the last pass and
the first failure (halves first if the start fails); a bounded number of short steps, on one
worker, replaced by a fresh one after a failed step so a backlog never leaks into the next.
`--set mode=fixed --set rate=500` offers one rate for `seconds` instead.

Fills are counted too (`slice.fill`, `slice.filled`) with the time from a slice's due time to
its first `slice.fill` event at the benchmark's subscriber (the sim's market orders fill at
once, so this is receipt plus the fill's way back); the sustained rate stays defined by
receipt at the broker.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from bench.environment import Services
from bench.floors import dispatch_floor
from bench.loading import progress, publish_and_wait
from bench.report import Result, percentiles
from bench.run import Run, bench_run
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
P99_LIMIT_MS = 50.0  # the sustained rate's lateness bound (issue's definition)


@dataclass(frozen=True)
class Params:
    mode: str = "search"  # search | fixed
    rate: int = 500  # fixed mode: slices/s offered
    seconds: int = 60  # fixed mode: how long
    slices: int = 30  # fixed mode: per parent; interval = seconds / slices
    start_rate: int = 50  # search: first step
    step_seconds: int = 12  # search: each step offers its rate this long
    step_slices: int = 6
    max_rate: int = 6_400
    bisections: int = 3
    max_steps: int = 10
    floor_updates: int = 5_000
    lead_seconds: float = 2.0  # a step's first slice falls due this long after its publish


FULL = Params()
QUICK = Params(
    rate=100, seconds=15, slices=15, start_rate=100, step_seconds=4, step_slices=4,
    bisections=1, max_steps=5, floor_updates=1_000,
)  # fmt: skip


@dataclass
class Step:
    """One rate offered for a while, and what reached the broker."""

    rate: int
    seconds: int
    parents: int
    start: float  # T0: the first due time
    due: dict[str, float]  # client_order_id -> due time
    received: dict[str, float]  # client_order_id -> broker receipt (first)
    duplicates: int
    problems: dict[str, int]
    completed: bool  # every parent completed within the wait
    cpu_s: float
    busy_pct: float
    late_setup: bool
    memory: dict[str, float] = field(default_factory=dict)
    fill_events: int = 0  # slice.fill events of this step
    filled_events: int = 0  # slice.filled events of this step
    fill_seen: dict[str, float] = field(default_factory=dict)  # coid -> first slice.fill arrival

    @property
    def lateness(self) -> list[float]:
        return [(self.received[c] - t) * 1000 for c, t in self.due.items() if c in self.received]

    @property
    def fill_delay(self) -> list[float]:
        """ms from each slice's due time to its first slice.fill event."""
        return [(self.fill_seen[c] - t) * 1000 for c, t in self.due.items() if c in self.fill_seen]

    @property
    def missed(self) -> int:
        return sum(1 for c in self.due if c not in self.received)

    @property
    def sustained(self) -> bool:
        """Lateness p99 <= 50 ms, nothing missed, expired, failed or sent twice."""
        p99 = percentiles(self.lateness).get("p99")
        return (
            self.completed
            and p99 is not None
            and p99 <= P99_LIMIT_MS
            and self.missed == 0
            and self.duplicates == 0
            and not any(self.problems.values())
        )

    def summary(self) -> dict[str, Any]:
        lat = percentiles(self.lateness)
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "slices_due": len(self.due),
            "sent": len(self.lateness),
            "missed": self.missed,
            "problems": sum(self.problems.values()),
            "p99_ms": lat.get("p99"),
            "max_ms": lat.get("max"),
            "cpu_ms_per_slice": round(1000 * self.cpu_s / max(len(self.lateness), 1), 3),
            "sustained": self.sustained,
            "fill_events": self.fill_events,
            "filled_events": self.filled_events,
            "fill_p99_ms": percentiles(self.fill_delay).get("p99"),
        }


async def offer(
    r: Run, rate: int, seconds: int, slices: int, *, drain: float = 30.0, lead: float = 2.0
) -> Step:
    """Publish parents whose slices fall due at `rate`/s for `seconds`, wait until they
    complete (at most `drain` s after the last due time), read the broker's ledger."""
    interval = max(1, seconds // slices)
    parents = rate * interval
    accepted_from = len(r.events.arrivals["parent.accepted"])
    completed_before = r.events.count("parent.completed")
    problems_before = {p: r.events.count(p) for p in PROBLEMS}
    fills_from = r.events.count("slice.fill")
    filled_before = r.events.count("slice.filled")
    lead += parents / 200  # time to accept every parent before the first is due
    t0 = time.time() + lead
    bodies = [
        submit(f"{r.run_id}-{rate}-{t0:.0f}", k, start_at=t0 + k / rate, slices=slices,
               interval=interval)
        for k in range(parents)
    ]  # fmt: skip
    loaded = await publish_and_wait(r, bodies, within=lead + seconds)
    progress(f"{parents:,} parents, {parents * slices:,} slices due at {rate}/s for {seconds} s")
    await asyncio.sleep(max(0.0, t0 - time.time()))
    cpu_before, window_start = r.worker.cpu_seconds(), time.time()
    completed = await r.events.wait_until(
        lambda: r.events.count("parent.completed") - completed_before >= loaded.accepted,
        max(0.0, t0 + interval * slices - time.time()) + drain,
    )
    cpu = r.worker.cpu_seconds() - cpu_before
    busy = 100 * cpu / max(time.time() - window_start, 1e-9)
    due: dict[str, float] = {}
    for arrival in r.events.arrivals["parent.accepted"][accepted_from:]:
        assert arrival.body is not None
        due.update(planned_slices(arrival.body)[1])
    fill_seen: dict[str, float] = {}
    fill_arrivals = r.events.arrivals["slice.fill"]
    read_to = fills_from

    def fills_seen() -> int:
        """Fold the new slice.fill arrivals into `fill_seen` (dropping their bodies)."""
        nonlocal read_to
        for arrival in fill_arrivals[read_to:]:
            coid = str(json.loads(arrival.body or b"{}").get("client_order_id"))
            fill_seen.setdefault(coid, arrival.at)
            arrival.body = None  # only the time is needed; a long search keeps no bodies
        read_to = len(fill_arrivals)
        return sum(1 for c in due if c in fill_seen)

    received: dict[str, float] = {}
    duplicates = 0
    for line in read_ledger(r.ledger_path):
        coid = str(line["client_order_id"])
        if coid not in due:
            continue
        if coid in received:
            duplicates += 1
        received.setdefault(coid, float(line["received_at"]))
    # A fill event may trail its parent's completion by a moment on the way back.
    await r.events.wait_until(lambda: fills_seen() >= len(received), 2.0)
    fills_seen()
    return Step(
        rate=rate,
        seconds=interval * slices,
        parents=loaded.accepted,
        start=t0,
        due=due,
        received=received,
        duplicates=duplicates,
        problems={p: r.events.count(p) - problems_before[p] for p in PROBLEMS},
        completed=completed,
        cpu_s=cpu,
        busy_pct=busy,
        late_setup=(loaded.last_accepted or t0) > t0,
        memory=r.worker.memory_mib(),
        fill_events=r.events.count("slice.fill") - fills_from,
        filled_events=r.events.count("slice.filled") - filled_before,
        fill_seen=fill_seen,
    )


def _bindings() -> list[str]:
    return [
        "parent.accepted.#", "parent.completed.#", "request.#", "slice.fill.#", "slice.filled.#",
        *(f"{p}.#" for p in PROBLEMS),
    ]  # fmt: skip


KEEP_BODIES = {"parent.accepted", "slice.fill"}


@dataclass
class Search:
    sustained: int  # slices/s; 0 when no step passed
    steps: list[Step]

    @property
    def best(self) -> Step | None:
        passed = [s for s in self.steps if s.sustained]
        return max(passed, key=lambda s: s.rate) if passed else None


_searched: dict[tuple[str | None, bool], Search] = {}


async def search(services: Services, quick: bool, params: Params) -> Search:
    """The sustained rate, found once per process and database (overload reuses it)."""
    key = (services.database_url, quick)
    if key in _searched:
        return _searched[key]
    steps: list[Step] = []
    good = bad = 0
    rate = params.start_rate
    bisected = 0
    stack: AsyncExitStack | None = None
    run: Run | None = None
    try:
        while len(steps) < params.max_steps:
            if run is None:
                stack = AsyncExitStack()
                run = await stack.enter_async_context(
                    bench_run(NAME, quick, services, bindings=_bindings(),
                              keep_bodies=KEEP_BODIES)
                )  # fmt: skip
                await run.start_worker()
            step = await offer(
                run, rate, params.step_seconds, params.step_slices, lead=params.lead_seconds
            )
            steps.append(step)
            verdict = "sustained" if step.sustained else "not sustained"
            progress(f"search: {rate}/s {verdict}: {step.summary()}")
            if step.sustained:
                good = rate
            else:
                bad = rate
                assert stack is not None
                await stack.aclose()  # a fresh worker and database for the next step
                stack, run = None, None
            if not bad:
                if rate * 2 > params.max_rate:
                    break
                rate *= 2
            elif not good:
                if rate // 2 < 1:
                    break
                rate //= 2
            else:
                if bisected >= params.bisections or bad - good <= max(1, good // 20):
                    break
                bisected += 1
                rate = (good + bad) // 2
    finally:
        if stack is not None:
            await stack.aclose()
    _searched[key] = Search(good, steps)
    return _searched[key]


def _step_figures(result: Result, step: Step) -> None:
    lat = percentiles(step.lateness)
    fill = percentiles(step.fill_delay)
    result.counts = {
        "parents": step.parents,
        "slices_due": len(step.due),
        "sent": len(step.lateness),
        "missed": step.missed,
        "duplicates": step.duplicates,
        "fill_events": step.fill_events,
        "filled_events": step.filled_events,
        "slices_with_fill": len(step.fill_delay),
        **{p: n for p, n in step.problems.items() if n},
    }
    window = (max(step.received.values()) - min(step.received.values())) if step.received else 0
    result.rates = {
        "offered_slices_per_s": step.rate,
        "sent_per_s": round(len(step.received) / window, 1) if window else 0.0,
        "worker_cpu_pct": round(step.busy_pct, 1),
        "worker_cpu_ms_per_slice": round(1000 * step.cpu_s / max(len(step.lateness), 1), 3),
    }
    result.percentiles = {"lateness_ms": lat, "due_to_fill_event_ms": fill}
    result.rss_mib = step.memory
    result.lines += [
        f"{len(step.due):,} slices of {step.parents:,} parents due at {step.rate}/s for "
        f"{step.seconds} s; sent {len(step.lateness):,}, missed {step.missed}, "
        f"duplicates {step.duplicates}",
        "lateness ms: " + ", ".join(f"{k} {v}" for k, v in lat.items()),
        f"fills: {step.fill_events:,} slice.fill, {step.filled_events:,} slice.filled events; "
        "due -> fill event ms: " + ", ".join(f"{k} {v}" for k, v in fill.items()),
        f"worker CPU {step.cpu_s:.1f} s ({result.rates['worker_cpu_pct']}% of a core, "
        f"{result.rates['worker_cpu_ms_per_slice']} ms per slice); "
        f"RSS {step.memory.get('rss')} MiB",
    ]
    if any(step.problems.values()):
        result.lines.append(f"slice problems: {step.problems}")
    if step.late_setup:
        result.notes.append("some parents were accepted after their first slice was due")
    if not step.completed:
        result.notes.append("not every parent completed within the wait")


async def run(services: Services, quick: bool, params: Params) -> Result:
    floor = await dispatch_floor(services, params.floor_updates)
    if params.mode == "fixed":
        async with bench_run(
            NAME, quick, services, bindings=_bindings(), keep_bodies=KEEP_BODIES
        ) as r:
            await r.start_worker()
            step = await offer(
                r, params.rate, params.seconds, params.slices, drain=60, lead=params.lead_seconds
            )
        result = Result(NAME, r.database.kind, quick)
        _step_figures(result, step)
        result.details = {"mode": "fixed"}
        result.set_floor(params.rate, floor, "offered slices/s")
        lat = result.percentiles["lateness_ms"]
        result.target("lateness p99 ms", lat.get("p99"), P99_LIMIT_MS)
        result.target("missed slices", step.missed + sum(step.problems.values()), 0)
        return result
    found = await search(services, quick, params)
    kind = "sqlite" if not services.database_url or services.database_url.startswith("sqlite") \
        else "postgresql"  # fmt: skip
    result = Result(NAME, kind, quick)
    result.lines.append(
        f"sustained rate {found.sustained}/s (lateness p99 <= {P99_LIMIT_MS:.0f} ms, none "
        f"missed), searched in {len(found.steps)} steps of {params.step_seconds} s: "
        + ", ".join(f"{s.rate}{'+' if s.sustained else '-'}" for s in found.steps)
    )
    best = found.best
    if best is not None:
        _step_figures(result, best)
    else:
        result.notes.append("no rate tried was sustained")
        result.counts = {"slices_due": 0}
    result.counts["steps"] = len(found.steps)
    result.rates["sustained_slices_per_s"] = found.sustained
    result.details = {"mode": "search", "steps": [s.summary() for s in found.steps]}
    result.set_floor(found.sustained, floor, "sustained slices/s")
    # The target for the redesign: a quarter of the floor.
    result.target("sustained / floor", result.ratio_to_floor, 0.25, higher_is_better=True)
    return result
