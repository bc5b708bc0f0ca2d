"""overload: twice the sustained rate (searched first in the same run, as `dispatch` does) for
60 s. Throughput = slices the broker received inside the window / window, as a share of the
sustained rate; then every slice must end terminal with its event (late ones `expired`, with
the reason), and the worker's log must hold no traceback.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from bench import dispatch
from bench.environment import Services
from bench.floors import dispatch_floor
from bench.loading import progress
from bench.report import Result, percentiles
from bench.run import bench_run

NAME = "overload"
# `slice.submitted` is not an end any more: a sent slice ends `filled` or `closed`.
TERMINAL = (
    "slice.filled",
    "slice.closed",
    "slice.expired",
    "slice.failed",
    "slice.rejected",
    "slice.canceled",
    "slice.blocked_kill_switch",
    "slice.blocked_circuit_breaker",
)
TRACEBACK = b"Traceback (most recent call last)"


@dataclass(frozen=True)
class Params:
    factor: float = 2.0  # offered rate = factor x sustained
    seconds: int = 60
    slices: int = 30
    rate: int = 0  # the sustained rate to start from; 0: search it first
    drain_seconds: int = 120  # after the window: how long the backlog may take to end
    lead_seconds: float = 2.0  # the first slice falls due this long after the publish


FULL = Params()
QUICK = Params(seconds=8, slices=4, drain_seconds=60)


async def run(services: Services, quick: bool, params: Params) -> Result:
    search_params = dispatch.QUICK if quick else dispatch.FULL
    floor = await dispatch_floor(services, search_params.floor_updates)
    sustained = params.rate
    searched = None
    if not sustained:
        searched = await dispatch.search(services, quick, search_params)
        sustained = searched.sustained or min(s.rate for s in searched.steps)
    offered = max(1, round(params.factor * sustained))
    bindings = ["parent.accepted.#", "parent.completed.#", "request.#", "slice.#"]
    async with bench_run(
        NAME, quick, services, bindings=bindings, keep_bodies={*dispatch.KEEP_BODIES, *TERMINAL}
    ) as r:
        await r.start_worker()
        step = await dispatch.offer(
            r, offered, params.seconds, params.slices,
            drain=params.drain_seconds, lead=params.lead_seconds,
        )  # fmt: skip
        # parent.completed comes after its slices' events; allow the last ones to arrive.
        terminal_ids: dict[str, str] = {}  # client_order_id -> its first terminal event
        terminal_seen: dict[str, int] = dict.fromkeys(TERMINAL, 0)

        def ended() -> int:
            for event_type in TERMINAL:
                arrivals = r.events.arrivals[event_type]
                for arrival in arrivals[terminal_seen[event_type] :]:
                    body = json.loads(arrival.body or b"{}")
                    terminal_ids.setdefault(str(body.get("client_order_id")), event_type)
                terminal_seen[event_type] = len(arrivals)
            return sum(1 for c in step.due if c in terminal_ids)

        await r.events.wait_until(lambda: ended() >= len(step.due), 10)
        ended()
        expired = [json.loads(a.body or b"{}") for a in r.events.arrivals["slice.expired"]]
        log = r.worker.log_path.read_bytes() if r.worker.log_path.exists() else b""
        r.worker.read_new()
        failures = Counter(
            (str(line.get("event")), str(line["exc"]).strip().splitlines()[-1][:200])
            for line in r.worker.lines
            if line.get("exc")
        )
    result = Result(NAME, r.database.kind, quick)
    window_end = step.start + step.seconds
    in_window = sum(1 for t in step.received.values() if step.start <= t < window_end)
    throughput = in_window / step.seconds
    last_end = max(step.received.values(), default=window_end)
    non_terminal = sum(1 for c in step.due if c not in terminal_ids)
    no_reason = sum(1 for e in expired if not e.get("reason"))
    tracebacks = log.count(TRACEBACK)
    by_outcome: dict[str, int] = {}
    for c in step.due:
        if c in terminal_ids:
            by_outcome[terminal_ids[c]] = by_outcome.get(terminal_ids[c], 0) + 1
    lat = percentiles(step.lateness)
    result.counts = {
        "sustained_slices_per_s": sustained,
        "offered_slices_per_s": offered,
        "parents": step.parents,
        "slices_due": len(step.due),
        "sent": len(step.received),
        "sent_in_window": in_window,
        "terminal": len(step.due) - non_terminal,
        "non_terminal": non_terminal,
        "expired": len(expired),
        "expired_without_reason": no_reason,
        "duplicates": step.duplicates,
        "traceback_lines": tracebacks,
        **{k.removeprefix("slice."): v for k, v in by_outcome.items()},
    }
    result.rates = {
        "throughput_slices_per_s": round(throughput, 1),
        "throughput_pct_of_sustained": round(100 * throughput / sustained, 1),
        "worker_cpu_pct": round(step.busy_pct, 1),
    }
    result.timings_s = {
        "window": step.seconds,
        "drain_after_window": round(max(0.0, last_end - window_end), 3),
    }
    result.percentiles = {"lateness_ms": lat}
    result.rss_mib = step.memory
    result.details = {
        "sustained_from": "argument" if searched is None else "search in this run",
        "search_steps": [s.summary() for s in searched.steps] if searched else [],
        # What went wrong, most frequent first: the log event and the exception's last line.
        "tracebacks": [
            {"event": event, "error": error, "count": n}
            for (event, error), n in failures.most_common(5)
        ],
        "expired_reasons": dict(Counter(str(e.get("reason")) for e in expired).most_common(5)),
    }
    result.lines = [
        f"{offered}/s offered ({params.factor:g} x sustained {sustained}/s) for {step.seconds} s: "
        f"{in_window:,} of {len(step.due):,} slices at the broker inside the window = "
        f"{throughput:,.1f}/s, {result.rates['throughput_pct_of_sustained']}% of sustained",
        f"terminal {len(step.due) - non_terminal:,}, non-terminal {non_terminal}, "
        f"by outcome {by_outcome}, expired without reason {no_reason}; backlog ended "
        f"{result.timings_s['drain_after_window']} s after the window",
        "lateness ms: " + ", ".join(f"{k} {v}" for k, v in lat.items()),
        f"traceback lines in the worker's log: {tracebacks}",
        *(f"  {n} x {event}: {error}" for (event, error), n in failures.most_common(3)),
    ]
    if searched is not None and not searched.sustained:
        result.notes.append("no rate was sustained; offered twice the lowest rate tried")
    if not step.completed:
        result.notes.append("not every parent completed within the drain wait")
    result.set_floor(throughput, floor, "slices/s under overload")
    result.target("throughput % of sustained", throughput * 100 / sustained, 90,
                  higher_is_better=True)  # fmt: skip
    result.target("non-terminal slices", non_terminal, 0)
    result.target("expired without reason", no_reason, 0)
    result.target("traceback lines in the worker's log", tracebacks, 0)
    progress(f"overload: {result.rates}")
    return result
