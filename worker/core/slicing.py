"""Slicing maths: how many slices, how big, and when each is due."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta


class PlanError(ValueError):
    """A request that cannot be sliced; `loc` names the field to change."""

    def __init__(self, loc: str, msg: str) -> None:
        super().__init__(f"{loc}: {msg}")
        self.loc = loc
        self.msg = msg


@dataclass(frozen=True, slots=True)
class SlicePlan:
    """Quantities per slice (index = slice number) and the spacing between due times."""

    quantities: tuple[int, ...]
    interval_seconds: int

    @property
    def count(self) -> int:
        return len(self.quantities)

    def due_time(self, start: datetime, slice_num: int) -> datetime:
        return due_time(start, self.interval_seconds, slice_num)


def due_time(start: datetime, interval_seconds: int, slice_num: int) -> datetime:
    """Slice i is due at start + i x interval; the first is due at the start."""
    return start + timedelta(seconds=interval_seconds * slice_num)


def slice_count(
    qty: int, duration_seconds: int, interval_seconds: int, max_slice_qty: int | None
) -> tuple[int, int]:
    """(n, interval): ceil(duration / interval), raised by the liquidity cap when it must be."""
    n = max(1, math.ceil(duration_seconds / interval_seconds))
    interval = interval_seconds
    if max_slice_qty is not None:
        needed = math.ceil(qty / max_slice_qty)
        if needed > n:
            n = needed
            interval = duration_seconds // (n - 1)
            if interval < 1:
                raise PlanError(
                    "max_slice_qty",
                    f"needs {n} slices, which would be under 1 s apart over "
                    f"{duration_seconds} s; raise max_slice_qty or the duration",
                )
    return n, interval


def split_quantity(qty: int, n: int, *, even_random: bool, seed: str) -> tuple[int, ...]:
    """qty div n each; the remainder adds one share to the first r slices, or r seeded picks."""
    if qty < n:
        raise PlanError("qty", f"{qty} is less than the slice count {n}; no slice may be empty")
    base, remainder = divmod(qty, n)
    if even_random:
        extra = set(random.Random(seed).sample(range(n), remainder))
    else:
        extra = set(range(remainder))
    return tuple(base + 1 if i in extra else base for i in range(n))


def plan(
    *,
    qty: int,
    duration_seconds: int,
    interval_seconds: int,
    max_slice_qty: int | None,
    even_random: bool,
    seed: str,
    max_slices: int | None = None,
) -> SlicePlan:
    """The whole slicing rule of the contract; raises PlanError naming the field at fault."""
    n, interval = slice_count(qty, duration_seconds, interval_seconds, max_slice_qty)
    if max_slices is not None and n > max_slices:
        loc = "max_slice_qty" if interval != interval_seconds else "interval_seconds"
        raise PlanError(loc, f"the plan would have {n} slices; the configured maximum is {max_slices}")
    quantities = split_quantity(qty, n, even_random=even_random, seed=seed)
    return SlicePlan(quantities=quantities, interval_seconds=interval)
