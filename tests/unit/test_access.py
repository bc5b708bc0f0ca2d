"""Who may do what: grants per strategy and action, the operator role, and refusals that name
the user, the strategy asked for and the grant missing, and nothing else."""

from __future__ import annotations

import pytest

from twap_schemas.errors import ErrorDetail
from worker.core.access import NO_USER, Grant, may_act, may_act_on_parent, may_operate

ALPHA = Grant.of("strat_alpha", ["alpha_1", "alpha_2"], ["submit", "cancel"], False)
OPS = Grant.of("alice", [], [], True)


def test_granted_strategy_and_action_pass() -> None:
    assert may_act("strat_alpha", ALPHA, "alpha_2", "submit") is None
    assert may_act("strat_alpha", ALPHA, "alpha_1", "cancel") is None


def test_missing_action_or_strategy_is_refused_without_naming_other_strategies() -> None:
    assert may_act("strat_alpha", ALPHA, "alpha_1", "amend") == ErrorDetail(
        loc="strategy_id", msg="user strat_alpha holds no 'amend' grant for strategy alpha_1")
    refusal = may_act("strat_alpha", ALPHA, "beta", "submit")
    assert refusal == ErrorDetail(
        loc="strategy_id", msg="user strat_alpha holds no 'submit' grant for strategy beta")
    assert "alpha" not in refusal.msg.replace("strat_alpha", "")


def test_no_grant_and_no_user() -> None:
    assert may_act("nobody", None, "alpha_1", "submit") == ErrorDetail(
        loc="strategy_id", msg="user nobody holds no 'submit' grant for strategy alpha_1")
    assert may_act(None, ALPHA, "alpha_1", "submit") is NO_USER
    assert NO_USER == ErrorDetail(
        loc="properties.user_id",
        msg="authorization is on and the message carries no AMQP user_id")


def test_the_operator_role_grants_no_strategy() -> None:
    assert may_act("alice", OPS, "alpha_1", "submit") is not None


def test_acting_on_a_parent_does_not_name_its_strategy() -> None:
    assert may_act_on_parent("strat_alpha", ALPHA, "alpha_1", "p1", "cancel") is None
    refused = ErrorDetail(loc="parent_order_id", msg=(
        "user strat_alpha holds no 'cancel' grant for the strategy of parent p1"))
    assert may_act_on_parent("strat_alpha", ALPHA, "beta", "p1", "cancel") == refused
    assert may_act_on_parent("strat_alpha", ALPHA, None, "p1", "cancel") == refused
    assert may_act_on_parent("strat_alpha", ALPHA, "alpha_1", "p1", "pause") == ErrorDetail(
        loc="parent_order_id",
        msg="user strat_alpha holds no 'pause' grant for the strategy of parent p1")
    assert may_act_on_parent("strat_alpha", None, "alpha_1", "p1", "cancel") == refused
    assert may_act_on_parent(None, ALPHA, "alpha_1", "p1", "cancel") is NO_USER


def test_operator_role() -> None:
    assert may_operate("alice", OPS, "limits.set") is None
    assert may_operate("strat_alpha", ALPHA, "limits.set") == (
        "user strat_alpha lacks the operator role required for limits.set")
    assert may_operate("bob", None, "breaker.reset") == (
        "user bob lacks the operator role required for breaker.reset")
    assert may_operate(None, OPS, "kill_switch.engage") == (
        "authorization is on and the kill_switch.engage message carries no AMQP user_id")


def test_grant_json_lists_actions_in_contract_order() -> None:
    grant = Grant.of("u", ["b", "a"], ["amend", "submit", "pause"], True)
    assert grant.to_json() == {"user": "u", "strategies": ["a", "b"],
                               "actions": ["submit", "pause", "amend"], "operator": True}


def test_the_contracts_actions_and_grant_defaults() -> None:
    import dataclasses

    from worker.core.access import ACTIONS

    assert ACTIONS == ("submit", "cancel", "pause", "resume", "amend")
    bare = Grant("u")
    assert (bare.strategies, bare.actions, bare.operator) == (frozenset(), frozenset(), False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bare.operator = True  # type: ignore[misc]
    assert not hasattr(bare, "__dict__")
