"""Settings and fake credentials that point the Alpaca adapter at the local stand-in."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from tests.support.alpaca_standin import AlpacaStandIn
from worker.settings import Settings

STANDIN_KEY = "standin-key-id"
STANDIN_SECRET = "standin-secret-must-never-be-logged"
TEST_TIMEOUT = 0.3


def standin_settings(standin: AlpacaStandIn, **overrides: Any) -> Settings:
    """Settings for TWAP_BROKER=alpaca against the stand-in (and its trade updates stream,
    when attached), with a tiny timeout and quick reconnects."""
    values: dict[str, Any] = {
        "broker": "alpaca",
        "alpaca_api_key": SecretStr(STANDIN_KEY),
        "alpaca_secret_key": SecretStr(STANDIN_SECRET),
        "alpaca_base_url": standin.url,
        "alpaca_data_url": standin.url,
        "alpaca_stream_url": standin.stream.url if standin.stream is not None else None,
        "stream_reconnect_wait_seconds": 0.05,
        "stream_reconnect_wait_cap_seconds": 0.5,
        "broker_timeout_seconds": TEST_TIMEOUT,
        "broker_rate_limit_per_minute": 6000,
        "broker_max_concurrency": 4,
    }
    values.update(overrides)
    return Settings(**values)


BROKER_FIELDS = ("broker", "alpaca_api_key", "alpaca_secret_key", "alpaca_base_url",
                 "alpaca_data_url", "alpaca_stream_url", "stream_reconnect_wait_seconds",
                 "stream_reconnect_wait_cap_seconds", "broker_timeout_seconds",
                 "broker_rate_limit_per_minute", "broker_max_concurrency")


def standin_broker_fields(standin: AlpacaStandIn, **overrides: Any) -> dict[str, Any]:
    """The broker part of `standin_settings`, to pass to a test worker's settings."""
    base = standin_settings(standin, **overrides)
    return {k: getattr(base, k) for k in BROKER_FIELDS}
