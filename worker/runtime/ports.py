"""What the runtime needs of the store, as Protocols: the database store implements them
(worker.store.repository.Store), and an in-memory one does for unit tests of the runtime."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from worker.brokers.orders import OrderView
from worker.core.guards import GuardState
from worker.core.outcomes import Outcome
from worker.core.records import ParentRecord, SliceRecord, SwitchState

Claimed = tuple[ParentRecord, SliceRecord, SwitchState]
SliceKey = tuple[str, int]
Finished = tuple[ParentRecord, SliceRecord, Outcome]


class SliceStore(Protocol):
    """A slice's life on the execution path: claim, the guards' read, note, outcome.

    Every status change is a compare-and-set: a claim returns nothing for a slice that is not
    scheduled, an outcome returns None for a slice no longer in the status it was read in.
    """

    @property
    def one_statement_outcomes(self) -> bool:
        """`finish` of an outcome other than `failed` is one statement without a transaction
        (PostgreSQL): cheaper alone than as a share of `finish_many` for a few outcomes."""
        ...

    async def claim(self, parent_id: str, slice_num: int, now: datetime) -> Claimed | None:
        """scheduled → submitting, with the parent and both switches read by the same step."""
        ...

    async def claim_many(self, keys: list[SliceKey], now: datetime) -> dict[SliceKey, Claimed]:
        """`claim` of each key; only the slices claimed here are in the answer."""
        ...

    async def guard_state(self, parent_id: str, slice_num: int) -> GuardState | None:
        """Parent, slice and switches as they are now; None: no such slice."""
        ...

    async def note_claimed(self, parent_id: str, slice_num: int, reason: str,
                           now: datetime) -> bool:
        """Write why a `submitting` slice is unsettled; False when it no longer is."""
        ...

    async def finish(self, parent: ParentRecord, record: SliceRecord, outcome: Outcome,
                     now: datetime, *, max_failures: int,
                     view: OrderView | None = None) -> SliceRecord | None:
        """The outcome with its event, the parent's completion and the breaker's count; a
        `submitted` outcome with the broker's view of the order applied with it."""
        ...

    async def size_claimed(self, parent_id: str, slice_num: int,
                           rule: Callable[[int, int], int], planned_qty: int,
                           now: datetime) -> int | None:
        """Catch-up: `rule(filled, working)` of the parent now (working counting its other
        slices being sent and the earlier ones still to fire), written as the claimed slice's
        qty, atomically with respect to every other sizing of the parent's slices. None: the
        slice is no longer `submitting`."""
        ...

    async def finish_many(self, items: list[Finished], now: datetime, *, max_failures: int,
                          views: list[OrderView | None] | None = None,
                          ) -> list[SliceRecord | None]:
        """`finish` of each item, in one step; `views[i]`, when given, as `finish`'s view."""
        ...

    async def expire_overdue(self, now: datetime, grace: timedelta, limit: int = 1000) -> int:
        """Scheduled slices missed beyond the grace → expired, with events; how many."""
        ...
