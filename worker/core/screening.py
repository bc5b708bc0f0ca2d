"""Who may send each request of a batch and whether its submit stays within the strategy's
limits, decided without I/O from what the store read in the batch's transaction (under the
strategies' lock). A request refused here becomes an Invalid like any other refusal: its
`request.rejected`, its dead letter, its reply.

Order: authorization first (an unauthorized user learns nothing of the limits), then the
limits. Submits already known, or repeated within the batch, are duplicates: not checked (the
parent was accepted once), and counted once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from worker.core.access import Grant, may_act, may_act_on_parent
from worker.core.intake import CancelOrder, IntakeItem, Invalid, PlannedSubmit
from worker.core.risk import Limits, NoPrice, Reference, Usage, check_submit

UNAUTHORIZED = "unauthorized"
RISK = "risk"


@dataclass(frozen=True, slots=True)
class ScreenInputs:
    authz: bool = False
    grants: Mapping[str, Grant] = field(default_factory=dict)
    cancel_strategies: Mapping[str, str] = field(default_factory=dict)  # parent id → strategy
    limits: Mapping[str, Limits] = field(default_factory=dict)  # strategy → effective limits
    usage: Mapping[tuple[str, date], Usage] = field(default_factory=dict)
    references: Mapping[str, Reference] = field(default_factory=dict)  # symbol → price


@dataclass(frozen=True, slots=True)
class Counted:
    """An accepted parent's notional at the reference price, for the day's usage."""

    parent_order_id: str
    strategy_id: str
    trade_date: date
    notional: Decimal
    reference: Decimal


NOT_FETCHED = NoPrice("no quote was fetched for it (the limits changed meanwhile)")


def screen(items: Iterable[IntakeItem], known: frozenset[str],
           inputs: ScreenInputs) -> tuple[list[IntakeItem], list[Counted]]:
    """The batch with every refused request turned Invalid, and the notionals to keep."""
    seen = set(known)
    usage = dict(inputs.usage)
    # A cancel may follow its own submit in the batch: that parent's strategy is known here.
    strategies = dict(inputs.cancel_strategies)
    out: list[IntakeItem] = []
    counted: list[Counted] = []
    for item in items:
        meta = item.inbound
        if isinstance(item, CancelOrder):
            pid = item.request.parent_order_id
            refusal = may_act_on_parent(meta.user_id, inputs.grants.get(meta.user_id or ""),
                                        strategies.get(pid), pid, "cancel") \
                if inputs.authz else None
            out.append(item if refusal is None else Invalid(meta, UNAUTHORIZED, [refusal]))
            continue
        if not isinstance(item, PlannedSubmit):
            out.append(item)
            continue
        parent = item.parent
        strategy = parent.strategy_id
        strategies.setdefault(parent.parent_order_id, strategy)
        if inputs.authz:
            refusal = may_act(meta.user_id, inputs.grants.get(meta.user_id or ""), strategy,
                              "submit")
            if refusal is not None:
                out.append(Invalid(meta, UNAUTHORIZED, [refusal], strategy))
                continue
        if parent.parent_order_id in seen:
            out.append(item)
            continue
        key = (strategy, parent.trade_date)
        now_used = usage.get(key, Usage())
        reference = inputs.references.get(parent.symbol, NOT_FETCHED)
        verdict = check_submit(parent, inputs.limits.get(strategy, Limits()), now_used,
                               reference)
        if verdict.errors:
            out.append(Invalid(meta, RISK, verdict.errors, strategy))
            continue
        seen.add(parent.parent_order_id)
        # Open parents count by strategy whatever the date: every key of the strategy moves.
        for other in [k for k in usage if k[0] == strategy and k != key]:
            usage[other] = Usage(usage[other].open_parents + 1, usage[other].daily_notional)
        usage[key] = now_used.plus(verdict.notional)
        if verdict.notional is not None:
            assert not isinstance(reference, NoPrice)
            counted.append(Counted(parent.parent_order_id, strategy, parent.trade_date,
                                   verdict.notional, reference))
        out.append(item)
    return out, counted
