"""What a batch of classified requests becomes, decided without I/O: accepted, duplicate or
rejected, with the events, dead letters and replies each one owes. The store only applies it.

A cancel's answer depends on what the cancel found in the database; `answer_cancel` decides
it from that finding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from twap_schemas.common import Outcome
from twap_schemas.errors import ErrorDetail
from twap_schemas.replies import Reply
from worker.core import events
from worker.core.intake import CancelOrder, Inbound, IntakeItem, PlannedSubmit
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord


@dataclass(frozen=True, slots=True)
class Decision:
    """One request's fate. `outcome`: accepted | duplicate | rejected | cancel (a cancel is
    decided by `answer_cancel` once the store applied it)."""

    outcome: str
    item: IntakeItem
    parent_order_id: str | None = None
    messages: list[OutboxMessage] = field(default_factory=list)  # in the order to write them
    accepted: tuple[ParentRecord, list[SliceRecord]] | None = None


def _with_reply(inbound: Inbound, messages: list[OutboxMessage],
                reply: Reply | None) -> list[OutboxMessage]:
    if inbound.reply_to and reply is not None:
        messages.append(events.reply(inbound.reply_to, inbound.correlation_id, reply))
    return messages


def decide(items: Iterable[IntakeItem], known: frozenset[str], now: datetime,
           requests_queue: str) -> list[Decision]:
    """Each request of the batch, in order. `known`: the submitted parents that exist already;
    a parent submitted twice in one batch is accepted once, then a duplicate."""
    seen = set(known)
    out: list[Decision] = []
    for item in items:
        meta = item.inbound
        if isinstance(item, PlannedSubmit):
            pid = item.parent.parent_order_id
            if pid in seen:
                duplicate = events.request_duplicate(
                    pid, item.parent.strategy_id, message_id=meta.message_id,
                    correlation_id=meta.correlation_id, at=now)
                reply = Reply(outcome=Outcome.DUPLICATE, type="submit", parent_order_id=pid)
                out.append(Decision("duplicate", item, pid, _with_reply(meta, [duplicate], reply)))
                continue
            seen.add(pid)
            # The plan is long: the reply is built only when someone listens.
            accepted = events.accepted_reply(item.parent, item.slices) if meta.reply_to else None
            messages = [events.parent_accepted(item.parent, item.slices, at=now)]
            out.append(Decision("accepted", item, pid, _with_reply(meta, messages, accepted),
                                accepted=(item.parent, item.slices)))
        elif isinstance(item, CancelOrder):
            out.append(Decision("cancel", item, item.request.parent_order_id))
        else:
            messages = [
                events.dead_letter(meta.body, item.kind, item.errors, requests_queue,
                                   meta.message_id, meta.correlation_id),
                events.request_rejected(item.errors, message_id=meta.message_id,
                                        correlation_id=meta.correlation_id,
                                        strategy_id=item.strategy_id, at=now),
            ]
            reply = Reply(outcome=Outcome.REJECTED, errors=item.errors)
            out.append(Decision("rejected", item, None, _with_reply(meta, messages, reply)))
    return out


def answer_cancel(item: CancelOrder, found: bool, canceled_slices: int, in_flight: int,
                  now: datetime) -> tuple[str, list[OutboxMessage]]:
    """A cancel's outcome (canceled | rejected) and the messages it owes the requester, from
    what it found: an unknown parent is rejected with the field at fault."""
    meta, pid = item.inbound, item.request.parent_order_id
    if not found:
        errors = [ErrorDetail(loc="parent_order_id", msg=f"unknown parent {pid!r}")]
        rejected = events.request_rejected(errors, message_id=meta.message_id,
                                           correlation_id=meta.correlation_id,
                                           parent_order_id=pid, at=now)
        reply = Reply(outcome=Outcome.REJECTED, type="cancel", parent_order_id=pid,
                      errors=errors)
        return "rejected", _with_reply(meta, [rejected], reply)
    reply = Reply(outcome=Outcome.ACCEPTED, type="cancel", parent_order_id=pid,
                  canceled_slices=canceled_slices, in_flight_slices=in_flight)
    return "canceled", _with_reply(meta, [], reply)
