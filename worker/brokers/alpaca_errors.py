"""What an Alpaca HTTP error means to the worker, decided from the status code alone.

Pure: no alpaca-py or requests import, so the classification is easy to read and to test.
The body is only used for the human-readable message and to recognise the one 422 that means
"you already sent this client_order_id"; an HTML error page must never crash the adapter.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from worker.core.retry import BrokerError, BrokerRejection, DuplicateOrder, TransientBrokerError

Operation = Literal["submit", "find", "cancel", "quote"]

MESSAGE_LIMIT = 200
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def error_message(body: str) -> str:
    """Alpaca's `message` when the body is its JSON error, else the body as short plain text."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        text: str = parsed["message"]
    else:
        text = _TAG.sub(" ", body)
    text = _SPACE.sub(" ", text).strip()
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1] + "…"
    return text or "(empty body)"


def is_duplicate_client_order_id(status: int, message: str) -> bool:
    """Alpaca answers a repeated client_order_id with 422 "client_order_id must be unique"."""
    lowered = message.lower()
    return status == 422 and "client_order_id" in lowered and "unique" in lowered


def classify_http_error(
    op: Operation, status: int, body: str, retry_after: str | None = None
) -> BrokerError:
    """The worker's error class for an HTTP error answer to `op`.

    400/401/403/422 and the other 4xx: rejection (another attempt gets the same answer).
    429, 408 and 5xx: transient. A 5xx answer to a submit is ambiguous: a gateway error can
    come after the order was booked, so the caller looks it up before sending it again.
    """
    message = error_message(body)
    text = f"alpaca {op}: HTTP {status}: {message}"
    if op == "submit" and is_duplicate_client_order_id(status, message):
        return DuplicateOrder(text)
    if status == 429:
        suffix = f" (retry after {retry_after} s)" if retry_after else ""
        return TransientBrokerError(text + suffix)
    if status == 408:
        return TransientBrokerError(text, ambiguous=op == "submit")
    if status >= 500:
        return TransientBrokerError(text, ambiguous=op == "submit")
    if 400 <= status < 500:
        return BrokerRejection(text)
    # A non-error status reaching here is a bug in the caller; retrying is the safe answer.
    return TransientBrokerError(text, ambiguous=op == "submit")
