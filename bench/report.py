"""A benchmark's figures: percentiles, the readable summary and the one JSON line."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.floors import Floor, ratio


def percentiles(values: list[float]) -> dict[str, float]:
    """p50 / p90 / p99 / p99.9 / max / min / mean (nearest rank), rounded to 0.001."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> float:
        index = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
        return ordered[index]

    out = {
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "p99_9": rank(0.999),
        "max": ordered[-1],
        "min": ordered[0],
        "mean": sum(ordered) / len(ordered),
    }
    return {k: round(v, 3) for k, v in out.items()}


@dataclass(slots=True)
class Target:
    what: str  # e.g. "requests/s >= 2000"
    measured: float | None
    limit: float
    higher_is_better: bool

    @property
    def met(self) -> bool:
        if self.measured is None:
            return False
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit


@dataclass
class Result:
    name: str
    database: str
    quick: bool
    counts: dict[str, int] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    percentiles: dict[str, dict[str, float]] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # the readable summary
    notes: list[str] = field(default_factory=list)
    # The figure as a ratio to the floor of the I/O it needs, measured in the same run; where
    # no floor applies, `floor` says why (`{"applies": False, "why": ...}`).
    floor_per_s: float | None = None
    ratio_to_floor: float | None = None
    floor: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the steps of a rate search

    def set_floor(self, measured: float | None, floor: Floor, ratio_of: str) -> None:
        """Record `floor` and `measured` (what `ratio_of` names) as a ratio to it."""
        self.floor_per_s = floor.per_s
        self.ratio_to_floor = ratio(measured, floor)
        self.floor = {"applies": True, "ratio_of": ratio_of, **floor.as_json()}
        self.lines.append(
            f"floor {floor.per_s:,.0f}/s ({floor.what}; "
            + ", ".join(f"{k} {v:,.0f}" for k, v in floor.parts.items())
            + f"): {ratio_of} = {self.ratio_to_floor} of the floor"
        )

    def no_floor(self, why: str) -> None:
        """This benchmark's target is absolute: say why."""
        self.floor = {"applies": False, "why": why}

    def target(
        self, what: str, measured: float | None, limit: float, *, higher_is_better: bool = False
    ) -> None:
        value = None if measured is None else round(measured, 3)
        self.targets.append(Target(what, value, limit, higher_is_better))

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "database": self.database,
            "quick": self.quick,
            "counts": self.counts,
            "rates": self.rates,
            "percentiles": self.percentiles,
            "rss_mib": self.rss_mib,
            "timings_s": self.timings_s,
            "floor_per_s": self.floor_per_s,
            "ratio_to_floor": self.ratio_to_floor,
            "floor": self.floor,
            "details": self.details,
            "targets": [{**asdict(t), "met": t.met} for t in self.targets],
            "all_targets_met": all(t.met for t in self.targets),
            "notes": self.notes,
            "machine": machine(),
        }


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def render(result: Result) -> str:
    mode = "quick" if result.quick else "full"
    out = [f"== {result.name} ({result.database}, {mode}) =="]
    out += [f"  {line}" for line in result.lines]
    for t in result.targets:
        sign = ">=" if t.higher_is_better else "<="
        verdict = "met" if t.met else "NOT met"
        out.append(
            f"  target {t.what} {sign} {_number(t.limit)}: measured "
            f"{_number(t.measured)} -> {verdict}"
        )
    out += [f"  note: {note}" for note in result.notes]
    load = machine()["loadavg"]
    out.append(f"  load average now: {load[0]} {load[1]} {load[2]} on {os.cpu_count()} cores")
    return "\n".join(out)


def emit(result: Result) -> None:
    """The readable summary, then the JSON line last."""
    print(render(result), flush=True)
    print(json.dumps(result.as_json(), separators=(",", ":")), flush=True)
    sys.stdout.flush()
