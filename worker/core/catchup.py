"""Catch-up: how many shares a slice sends when earlier slices did not execute in full.

The contract's rule, applied when slice i fires:
    target = planned qty of slices 0..i
    done   = parent filled qty + qty still working at the broker
    qty_i  = min(max(planned_i, target - done), floor(ratio x planned_i), qty - done)
Without catch-up a slice sends its planned qty (never more than what is left).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

MIN_RATIO = Decimal(1)
MAX_RATIO = Decimal(10)
DEFAULT_RATIO = Decimal(2)


def slice_qty(
    planned: Sequence[int],
    slice_num: int,
    *,
    total_qty: int,
    filled_qty: int,
    working_qty: int,
    catch_up: bool = True,
    max_ratio: Decimal = DEFAULT_RATIO,
) -> int:
    """Shares slice `slice_num` sends now; 0 means nothing is left for it to send."""
    if not MIN_RATIO <= max_ratio <= MAX_RATIO:
        raise ValueError(f"max_catch_up_ratio must be within 1-10, got {max_ratio}")
    if filled_qty < 0 or working_qty < 0:
        raise ValueError("filled and working qty cannot be negative")
    planned_i = planned[slice_num]
    left = total_qty - filled_qty - working_qty
    if not catch_up:
        return max(0, min(planned_i, left))
    target = sum(planned[: slice_num + 1])
    behind = target - filled_qty - working_qty
    cap = math.floor(max_ratio * planned_i)
    return max(0, min(max(planned_i, behind), cap, left))
