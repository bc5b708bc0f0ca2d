"""soak: rounds of parents that complete; the worker's RSS after each round and its growth per
1,000 completed parents, fitted by least squares over rounds 2..N.

The first round is left out of the fit: it warms caches, pools and the allocator's arenas,
which is a one-off step, not growth. A worker that releases what a terminal parent held
shows a slope near zero from then on; one that keeps something per parent shows a slope of
that many bytes per parent. A slope over many rounds is robust to the noise of a busy
machine, where a single before/after difference is not.

Forty rounds, not twenty or ten: RSS moves in the allocator's steps (a pymalloc arena is 1 MiB,
and a large table lives in a mapping of its own), taken and given back as a round's busiest
moment varies. A 0.5 MiB block alive at some round ends and not others, at random, moves the
slope over rounds 2..20 by ±3.6 KiB per 1,000 (one standard deviation: 256 KiB over the root of
the rounds' spread, 5,130), so that block alone would put a flat worker above 5 in about one
run of twelve; over rounds 2..40 (spread 44,460) it moves it by ±1.2. A step that stays halves
too: 0.5 MiB taken once mid-run reads +13.5 over 20 rounds and +6.6 over 40. The slope over the
second half of the rounds is reported beside the figure: growth keeps the same slope there, a
settling allocator does not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.environment import Services
from bench.loading import progress, publish_and_wait
from bench.report import Result
from bench.run import Run, bench_run
from bench.workload import submit

NAME = "soak"
SLOPE_TARGET_KIB_PER_1000 = 5.0


@dataclass(frozen=True)
class Params:
    rounds: int = 40
    parents: int = 3_000  # per round
    slices: int = 2
    interval: int = 1
    settle_seconds: float = 1.0  # after a round's last completion, before reading RSS
    # Longest wait for a round's parents to be accepted, then to complete. RSS is read only
    # once they have: read while parents are still in flight it measures them, not growth. On
    # a loaded machine (load average 7 on 2 cores) a round of 3,000 took over 120 s.
    round_wait_seconds: float = 900.0


FULL = Params()
QUICK = Params(rounds=4, parents=250, round_wait_seconds=120.0)  # proves it runs; CI bounds it


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float:
    """The slope of the least-squares line through (x, y) points; needs two distinct x."""
    n = len(points)
    if n < 2:
        raise ValueError(f"a slope needs at least 2 points, got {n}")
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        raise ValueError("a slope needs at least 2 distinct x values")
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def growth(series: Sequence[tuple[int, float]]) -> tuple[float | None, int, float | None]:
    """From (parents completed so far, RSS MiB) after each round: the slope in KiB per 1,000
    parents over rounds 2..N, the first round of the second half, and the slope from that
    round to N (None where fewer than 2 rounds are fitted)."""
    fitted = [(done / 1000, rss * 1024) for done, rss in series[1:]]
    later_from = len(series) // 2 + 1  # rounds 21..40 of 40
    later = fitted[later_from - 2:]

    def slope_of(points: list[tuple[float, float]]) -> float | None:
        return least_squares_slope(points) if len(points) >= 2 else None

    return slope_of(fitted), later_from, slope_of(later)


async def _one_round(r: Run, params: Params, number: int) -> int:
    """Publish a round of parents due now and wait until every one has completed."""
    completed_before = r.events.count("parent.completed")
    start = time.time()
    bodies = [
        submit(
            r.run_id,
            number * params.parents + k,
            start_at=start,
            slices=params.slices,
            interval=params.interval,
        )
        for k in range(params.parents)
    ]
    loaded = await publish_and_wait(r, bodies, within=params.round_wait_seconds)
    done = await r.events.wait_until(
        lambda: r.events.count("parent.completed") - completed_before >= loaded.accepted,
        params.round_wait_seconds,
    )
    if not done:
        progress(f"round {number + 1}: not every parent completed within the wait")
    return r.events.count("parent.completed") - completed_before


async def run(services: Services, quick: bool, params: Params) -> Result:
    bindings = ["parent.accepted.#", "parent.completed.#", "request.#"]
    async with bench_run(NAME, quick, services, bindings=bindings, keep_bodies=set()) as r:
        await r.start_worker()
        await asyncio.sleep(params.settle_seconds)
        idle = r.worker.memory_mib()["rss"]
        completed = 0
        series: list[tuple[int, float]] = []  # (parents completed so far, RSS MiB)
        started = time.monotonic()
        for number in range(params.rounds):
            completed += await _one_round(r, params, number)
            await asyncio.sleep(params.settle_seconds)
            rss = r.worker.memory_mib()["rss"]
            series.append((completed, rss))
            progress(f"round {number + 1}/{params.rounds}: {completed:,} completed, RSS {rss} MiB")
        elapsed = time.monotonic() - started
        peak = r.worker.memory_mib()["peak"]
    slope, later_from, later_slope = growth(series)

    result = Result(NAME, r.database.kind, quick)
    result.counts = {
        "rounds": params.rounds,
        "parents_per_round": params.parents,
        "completed_parents": completed,
    }
    result.rss_mib = {"idle": idle, "rss": series[-1][1], "peak": peak}
    for number, (_, rss) in enumerate(series, start=1):
        result.rss_mib[f"round_{number}"] = rss
    result.rates = {"kib_per_1000_parents": round(slope, 2) if slope is not None else 0.0}
    if later_slope is not None:
        result.rates["kib_per_1000_parents_second_half"] = round(later_slope, 2)
    result.timings_s = {"rounds": round(elapsed, 1)}
    result.no_floor(
        "absolute: RSS growth per 1,000 completed parents, a slope that should be flat whatever "
        "the machine; no I/O rate sets it"
    )
    shown = "n/a" if slope is None else f"{slope:+.1f}"
    shown_later = "n/a" if later_slope is None else f"{later_slope:+.1f}"
    result.lines = [
        f"{params.rounds} rounds of {params.parents:,} parents of {params.slices} slices "
        f"{params.interval} s apart; {completed:,} completed in {elapsed:.0f} s",
        f"RSS MiB: idle {idle}, after each round " + ", ".join(str(m) for _, m in series),
        f"growth over rounds 2..{params.rounds} (least squares): {shown} KiB per 1,000 "
        "completed parents",
        f"over rounds {later_from}..{params.rounds} alone: {shown_later} KiB per 1,000",
    ]
    if completed < params.rounds * params.parents:
        result.notes.append("not every parent completed")
    if quick:
        result.notes.append("quick: too few parents per round for the slope to be more than a sign")
    result.target("RSS growth KiB per 1,000 completed parents", slope, SLOPE_TARGET_KIB_PER_1000)
    result.target("parents not completed", params.rounds * params.parents - completed, 0)
    return result
