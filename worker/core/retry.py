"""What a broker failure means, and how long to wait before trying again.

Adapters translate their client's errors into these classes; the executor only ever looks at
the class, so the retry policy is the same for every broker.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base class of every failure an adapter reports."""


class BrokerRejection(BrokerError):
    """The broker refused the order (bad symbol, no buying power, ...): never retried."""


class DuplicateOrder(BrokerError):
    """The broker already has an order with this client_order_id: it IS at the broker."""


class TransientBrokerError(BrokerError):
    """Timeouts, 429, 5xx, dropped connections: worth another attempt.

    `ambiguous` is true when the request may have reached the broker (a timeout after sending,
    a connection dropped mid-request): before resubmitting, look the order up.
    """

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


def is_retryable(exc: BaseException) -> bool:
    """Only transient broker errors are retried; anything else ends the slice."""
    return isinstance(exc, TransientBrokerError)


def backoff_seconds(attempt: int, first_wait: float, cap: float = 8.0) -> float:
    """Wait before attempt `attempt + 1`: first_wait, then doubling, capped (2, 4, 8, 8, ...)."""
    if attempt < 1:
        return 0.0
    return float(min(first_wait * (2 ** (attempt - 1)), cap))
