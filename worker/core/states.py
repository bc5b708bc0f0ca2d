"""The slice state machine: which status may follow which, and which are final."""

from __future__ import annotations

from twap_schemas.common import SliceStatus as S

TERMINAL: frozenset[S] = frozenset(
    {
        S.FILLED,
        S.CLOSED,
        S.BLOCKED_KILL_SWITCH,
        S.BLOCKED_CIRCUIT_BREAKER,
        S.CANCELED,
        S.REJECTED,
        S.FAILED,
        S.EXPIRED,
        S.BLOCKED_RISK,
    }
)
# Not yet sent (or being sent): what a cancel or the scheduler still has to settle.
PENDING: frozenset[S] = frozenset({S.SCHEDULED, S.SUBMITTING})
# Every status that is not terminal: pending, or working at the broker (`submitted`).
OPEN: frozenset[S] = PENDING | {S.SUBMITTED}

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
            S.CLOSED,  # catch-up left nothing for it to send
            S.BLOCKED_RISK,  # a risk limit refused it before the send (contract v2)
        }
    ),
    # Working at the broker until the order ends: every share filled, or closed (canceled at
    # the slice's or parent's end, by a cancel, expired or done for the day at the broker).
    S.SUBMITTED: frozenset({S.FILLED, S.CLOSED}),
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
