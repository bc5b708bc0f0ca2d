"""Classification of Alpaca's HTTP errors: pure, from the status code and the body text."""

from __future__ import annotations

import pytest

from worker.brokers.alpaca_errors import (
    MESSAGE_LIMIT,
    classify_http_error,
    error_message,
    is_duplicate_client_order_id,
)
from worker.core.retry import BrokerRejection, DuplicateOrder, TransientBrokerError

DUPLICATE = '{"code": 40010001, "message": "client_order_id must be unique"}'


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_rejections(status: int) -> None:
    """4xx other than 408/429 is a rejection: the same request gets the same answer."""
    assert type(classify_http_error("submit", status, '{"message": "no"}')) is BrokerRejection


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    """408, 429 and 5xx are transient."""
    assert isinstance(classify_http_error("find", status, ""), TransientBrokerError)


@pytest.mark.parametrize(("status", "ambiguous"), [(429, False), (500, True), (504, True)])
def test_only_server_errors_on_submit_are_ambiguous(status: int, ambiguous: bool) -> None:
    """A 5xx to a submit may hide a booked order; a 429 never does."""
    error = classify_http_error("submit", status, "")
    assert isinstance(error, TransientBrokerError)
    assert error.ambiguous is ambiguous


def test_server_errors_on_find_are_not_ambiguous() -> None:
    """Ambiguity only matters for a submit: a lookup has nothing to double."""
    error = classify_http_error("find", 503, "")
    assert isinstance(error, TransientBrokerError) and error.ambiguous is False


def test_unique_client_order_id_422_on_submit_is_duplicate() -> None:
    """422 "client_order_id must be unique" to a submit means the order is already there."""
    assert type(classify_http_error("submit", 422, DUPLICATE)) is DuplicateOrder


def test_unique_message_with_another_status_is_not_duplicate() -> None:
    """Only a 422 says duplicate; the same words with 400 stay a rejection."""
    assert not is_duplicate_client_order_id(400, "client_order_id must be unique")
    assert type(classify_http_error("submit", 400, DUPLICATE)) is BrokerRejection


def test_json_message_is_extracted() -> None:
    """Alpaca's JSON error body gives its `message`."""
    assert error_message('{"code": 40310000, "message": "insufficient buying power"}') == (
        "insufficient buying power"
    )


def test_html_body_becomes_plain_text() -> None:
    """An HTML error page is reduced to its text, never parsed as JSON."""
    page = "<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body></html>"
    assert error_message(page) == "502 Bad Gateway nginx"


@pytest.mark.parametrize("body", ["", "[1, 2]", '{"message": 7}', "null", "{not json"])
def test_odd_bodies_never_raise(body: str) -> None:
    """Empty, non-object or broken JSON bodies still give a message."""
    assert error_message(body)


def test_long_body_is_truncated() -> None:
    """A huge body is cut to a short message."""
    assert len(error_message("x" * 10_000)) == MESSAGE_LIMIT
