"""Who may do what, with `TWAP_AUTHZ=on`: a user's grant names the strategies and actions it
may use, or gives the operator role. Pure: the caller reads the grant of the message's AMQP
`user_id` (RabbitMQ checks that id against the connection's user, so it cannot be forged).

A refusal names the user, the strategy asked for and the grant missing; never what the user
may do elsewhere, nor anything of another strategy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from twap_schemas.errors import ErrorDetail

ACTIONS = ("submit", "cancel", "pause", "resume", "amend")
OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class Grant:
    user: str
    strategies: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    operator: bool = False

    def to_json(self) -> dict[str, object]:
        return {"user": self.user, "strategies": sorted(self.strategies),
                "actions": [a for a in ACTIONS if a in self.actions],
                "operator": self.operator}

    @classmethod
    def of(cls, user: str, strategies: Iterable[str], actions: Iterable[str],
           operator: bool) -> Grant:
        return cls(user, frozenset(strategies), frozenset(actions), operator)


NO_USER = ErrorDetail(loc="properties.user_id", msg=(
    "authorization is on and the message carries no AMQP user_id"))


def may_act(user: str | None, grant: Grant | None, strategy: str,
            action: str) -> ErrorDetail | None:
    """None when `user` may `action` on `strategy`; else the refusal."""
    if user is None:
        return NO_USER
    if grant is not None and strategy in grant.strategies and action in grant.actions:
        return None
    return ErrorDetail(loc="strategy_id", msg=(
        f"user {user} holds no {action!r} grant for strategy {strategy}"))


def may_act_on_parent(user: str | None, grant: Grant | None, strategy: str | None,
                      parent_order_id: str, action: str) -> ErrorDetail | None:
    """For a request naming a parent: the user must hold `action` on the parent's strategy.
    The refusal does not say which strategy that is (the user may not know it)."""
    if user is None:
        return NO_USER
    if (strategy is not None and grant is not None and strategy in grant.strategies
            and action in grant.actions):
        return None
    return ErrorDetail(loc="parent_order_id", msg=(
        f"user {user} holds no {action!r} grant for the strategy of parent {parent_order_id}"))


def may_operate(user: str | None, grant: Grant | None, what: str) -> str | None:
    """None when `user` holds the operator role; else why `what` is refused."""
    if user is None:
        return f"authorization is on and the {what} message carries no AMQP user_id"
    if grant is not None and grant.operator:
        return None
    return f"user {user} lacks the {OPERATOR} role required for {what}"
