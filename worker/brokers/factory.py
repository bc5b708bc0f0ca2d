"""Build the broker the settings ask for: the built-in sim, or Alpaca."""

from __future__ import annotations

from worker.brokers.base import Broker
from worker.brokers.ratelimit import RateLimiter
from worker.brokers.sim import SimBroker
from worker.brokers.sim_market import Market
from worker.settings import Settings

_KEY_VARS = "ALPACA_API_KEY (or APCA_API_KEY_ID)"
_SECRET_VARS = "ALPACA_SECRET_KEY (or APCA_API_SECRET_KEY)"


class MissingCredentials(ValueError):
    """TWAP_BROKER=alpaca without the Alpaca key and secret. The message names the variables."""


def build_broker(settings: Settings) -> Broker:
    """The configured broker. Alpaca's adapter (and alpaca-py, pandas) load only when chosen."""
    if settings.broker == "sim":
        market = Market(prices=settings.sim_price_table,
                        volatility_bps=settings.sim_volatility_bps,
                        spread_bps=settings.sim_spread_bps)
        return SimBroker(
            ledger_path=settings.sim_ledger_path, latency=settings.sim_latency_ms / 1000,
            market=market, fill_qty=settings.sim_fill_qty,
            fill_interval=settings.sim_fill_interval_ms / 1000,
        )
    key, secret = settings.alpaca_api_key, settings.alpaca_secret_key
    missing = [
        names
        for names, value in ((_KEY_VARS, key), (_SECRET_VARS, secret))
        if value is None or not value.get_secret_value().strip()
    ]
    if missing or key is None or secret is None:
        raise MissingCredentials(f"TWAP_BROKER=alpaca needs {' and '.join(missing)}")

    from worker.brokers.alpaca import AlpacaBroker

    return AlpacaBroker(
        api_key=key,
        secret_key=secret,
        paper=settings.alpaca_paper,
        base_url=settings.alpaca_base_url,
        timeout_seconds=settings.broker_timeout_seconds,
        max_concurrency=settings.broker_max_concurrency,
        limiter=RateLimiter(settings.broker_rate_limit_per_minute, 60.0),
        stream_url=settings.alpaca_stream_url,
        data_url=settings.alpaca_data_url,
        stream_wait=settings.stream_reconnect_wait_seconds,
        stream_wait_cap=settings.stream_reconnect_wait_cap_seconds,
        quote_cache_seconds=settings.quote_cache_seconds,
    )
