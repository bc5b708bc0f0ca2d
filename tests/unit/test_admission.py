"""core.admission: what a batch of requests becomes, decided without a database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from twap_schemas.errors import ErrorDetail
from twap_schemas.requests import CancelRequest, SubmitRequest
from worker.core.admission import answer_cancel, decide
from worker.core.intake import CancelOrder, Inbound, Invalid, PlannedSubmit
from worker.core.planning import build_plan

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


def _submit(request_id: str, reply_to: str | None = None) -> PlannedSubmit:
    request = SubmitRequest(type="submit", strategy_id="s1", symbol="AAPL", side="buy", qty=10,
                            duration_seconds=10, interval_seconds=5, request_id=request_id)
    parent, records = build_plan(request, now=NOW)
    inbound = Inbound(json.dumps({"request_id": request_id}).encode(), message_id=request_id,
                      reply_to=reply_to, correlation_id="c-" + request_id)
    return PlannedSubmit(inbound, parent, records)


def test_a_parent_submitted_twice_in_one_batch_is_accepted_once() -> None:
    """The first submit of a parent is accepted with its event; the second, and one of a parent
    that exists already, are duplicates with their own event."""
    first, again, old = _submit("a"), _submit("a"), _submit("b")
    known = frozenset({old.parent.parent_order_id})
    decisions = decide([first, again, old], known, NOW, "N.requests")
    assert [d.outcome for d in decisions] == ["accepted", "duplicate", "duplicate"]
    assert decisions[0].accepted == (first.parent, first.slices)
    assert decisions[1].accepted is None
    assert [[m.type for m in d.messages] for d in decisions] == [
        ["parent.accepted"], ["request.duplicate"], ["request.duplicate"]]


def test_replies_go_only_to_requests_that_ask_and_follow_their_events() -> None:
    """A submit with reply_to gets its accepted reply after parent.accepted; without reply_to
    no reply is built."""
    asked, silent = _submit("a", reply_to="amq.rabbitmq.reply-to"), _submit("b")
    decisions = decide([asked, silent], frozenset(), NOW, "N.requests")
    assert [m.type for m in decisions[0].messages] == ["parent.accepted", "reply.accepted"]
    assert decisions[0].messages[1].routing_key == "amq.rabbitmq.reply-to"
    assert decisions[0].messages[1].correlation_id == "c-a"
    assert [m.type for m in decisions[1].messages] == ["parent.accepted"]


def test_an_invalid_request_is_dead_lettered_rejected_and_answered() -> None:
    """An invalid request: its body to the dead letters with the reason, request.rejected, and a
    rejected reply naming the field."""
    errors = [ErrorDetail(loc="qty", msg="must be positive")]
    bad = Invalid(Inbound(b'{"qty": -1}', message_id="m1", reply_to="r"), "schema", errors, "s1")
    (decision,) = decide([bad], frozenset(), NOW, "N.requests")
    assert decision.outcome == "rejected" and decision.accepted is None
    dead, rejected, reply = decision.messages
    assert (dead.exchange, dead.routing_key, dead.body) == ("dlx", "N.requests", b'{"qty": -1}')
    assert dead.headers["x-twap-reason"] == "schema"
    assert rejected.type == "request.rejected"
    assert json.loads(reply.body)["errors"][0]["loc"] == "qty"


def test_a_cancel_is_answered_from_what_it_found() -> None:
    """A cancel is left to the store, then answered: an unknown parent is rejected naming
    parent_order_id; a known one is accepted with its counts."""
    cancel = CancelOrder(Inbound(b"{}", reply_to="r"),
                         CancelRequest(type="cancel", parent_order_id="P1"))
    (decision,) = decide([cancel], frozenset(), NOW, "N.requests")
    assert decision.outcome == "cancel" and decision.messages == []
    outcome, messages = answer_cancel(cancel, False, 0, 0, NOW)
    assert outcome == "rejected"
    assert [m.type for m in messages] == ["request.rejected", "reply.rejected"]
    assert json.loads(messages[1].body)["errors"][0]["loc"] == "parent_order_id"
    outcome, messages = answer_cancel(cancel, True, 4, 1, NOW)
    body = json.loads(messages[0].body)
    assert outcome == "canceled"
    assert (body["canceled_slices"], body["in_flight_slices"]) == (4, 1)


def test_replies_name_their_request_type_and_the_unknown_parent() -> None:
    """A duplicate's reply says submit; a cancel's reply says cancel, accepted or rejected with
    the unknown parent named."""
    first, again = _submit("a", reply_to="q"), _submit("a", reply_to="q")
    dup = decide([first, again], frozenset(), NOW, "N.requests")[1]
    reply = json.loads(dup.messages[-1].body)
    assert (reply["outcome"], reply["type"]) == ("duplicate", "submit")
    inbound = Inbound(b"{}", message_id="m", reply_to="q", correlation_id="c")
    cancel = CancelOrder(inbound, CancelRequest(type="cancel", parent_order_id="abc"))
    outcome, messages = answer_cancel(cancel, False, 0, 0, NOW)
    body = json.loads(messages[-1].body)
    assert (outcome, body["type"], body["errors"]) == (
        "rejected", "cancel", [{"loc": "parent_order_id", "msg": "unknown parent 'abc'"}])
    outcome, messages = answer_cancel(cancel, True, 3, 1, NOW)
    body = json.loads(messages[-1].body)
    assert (outcome, body["type"], body["canceled_slices"], body["in_flight_slices"]) == (
        "canceled", "cancel", 3, 1)
