"""The slice state machine: which status may follow which, and which are final."""

from __future__ import annotations

from twap_schemas.common import SliceStatus as S

TERMINAL: frozenset[S] = frozenset(
    {
        S.SUBMITTED,
        S.BLOCKED_KILL_SWITCH,
        S.BLOCKED_CIRCUIT_BREAKER,
        S.CANCELED,
        S.REJECTED,
        S.FAILED,
        S.EXPIRED,
        S.BLOCKED_RISK,
    }
)
PENDING: frozenset[S] = frozenset({S.SCHEDULED, S.SUBMITTING})

TRANSITIONS: dict[S, frozenset[S]] = {
    # Guards run after the claim, so a scheduled slice only leaves by being claimed, canceled,
    # expired (missed beyond the grace) or failed (the database was away past the grace).
    S.SCHEDULED: frozenset({S.SUBMITTING, S.CANCELED, S.EXPIRED, S.FAILED}),
    S.SUBMITTING: frozenset(
        {
            S.SUBMITTED,
            S.BLOCKED_KILL_SWITCH,
            S.BLOCKED_CIRCUIT_BREAKER,
            S.CANCELED,  # parent canceled between two retry attempts
            S.REJECTED,
            S.FAILED,
            S.EXPIRED,
            S.BLOCKED_RISK,  # a risk limit refused it before the send (contract v2)
        }
    ),
    **{status: frozenset() for status in TERMINAL},
}


class IllegalTransition(ValueError):
    pass


def check_transition(current: S, new: S) -> None:
    """Raise IllegalTransition unless `new` may follow `current`."""
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"slice cannot go from {current.value} to {new.value}")


def is_terminal(status: S) -> bool:
    return status in TERMINAL
