"""The promises the fault suite checks after every fault, as figures: the database and the
broker's ledger must agree, no order twice, no slice left behind."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from tests.support.db_probe import (
    PENDING_SLICE,
    TERMINAL_PARENT,
    DbProbe,
    count_statuses,
    ledger_counts,
)
from worker.brokers.sim import read_ledger


@dataclass
class Figures:
    """What one trial left behind, for one strategy's parents."""

    parents: int = 0
    parents_not_terminal: int = 0
    slices: int = 0
    slices_not_terminal: int = 0
    duplicates: int = 0  # orders at the broker beyond the first per client_order_id
    submitted_not_at_broker: int = 0
    at_broker_not_submitted: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    min_gap_seconds: float | None = None  # closest two orders of one parent at the broker

    @property
    def broken(self) -> bool:
        return bool(
            self.parents_not_terminal
            or self.slices_not_terminal
            or self.duplicates
            or self.submitted_not_at_broker
            or self.at_broker_not_submitted
        )

    def summary(self) -> str:
        gap = "n/a" if self.min_gap_seconds is None else f"{self.min_gap_seconds:.3f} s"
        return (
            f"parents={self.parents} (not terminal: {self.parents_not_terminal}), "
            f"slices={self.slices} (not terminal: {self.slices_not_terminal}), "
            f"duplicate orders={self.duplicates}, "
            f"submitted but not at the broker={self.submitted_not_at_broker}, "
            f"at the broker but not submitted={self.at_broker_not_submitted}, "
            f"statuses={self.statuses}, closest orders of one parent={gap}"
        )


async def check(probe: DbProbe, ledger: Path, strategy_id: str) -> Figures:
    """The figures of one strategy's parents against the ledger."""
    parents = await probe.parents(strategy_id)
    rows = await probe.slices(strategy_id)
    ours = {row.client_order_id: row for row in rows}
    lines = [line for line in read_ledger(ledger) if line["client_order_id"] in ours]
    counts = ledger_counts(lines)
    submitted = {cid for cid, row in ours.items() if row.at_broker}
    return Figures(
        parents=len(parents),
        parents_not_terminal=sum(1 for s in parents.values() if s not in TERMINAL_PARENT),
        slices=len(rows),
        slices_not_terminal=sum(1 for row in rows if row.status in PENDING_SLICE),
        duplicates=sum(n - 1 for n in counts.values()),
        submitted_not_at_broker=len(submitted - counts.keys()),
        at_broker_not_submitted=len(counts.keys() - submitted),
        statuses=count_statuses(rows),
        min_gap_seconds=_min_gap(lines, ours),
    )


def _min_gap(lines: list[dict[str, Any]], ours: dict[str, Any]) -> float | None:
    per_parent: dict[str, list[float]] = {}
    for line in lines:
        parent = ours[line["client_order_id"]].parent_order_id
        per_parent.setdefault(parent, []).append(float(line["received_at"]))
    gaps = [
        later - earlier
        for times in per_parent.values()
        for earlier, later in pairwise(sorted(times))
    ]
    return min(gaps) if gaps else None
