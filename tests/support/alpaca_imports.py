"""alpaca-py names for tests, imported quietly (its stream module imports the deprecated
websockets.legacy: a warning about alpaca-py, not about this project)."""

from __future__ import annotations

import warnings


def trade_events() -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from alpaca.trading.enums import TradeEvent
    return [event.value for event in TradeEvent]


def stream_base_urls() -> tuple[str, str]:
    """alpaca-py's own trade stream URLs: paper, live."""
    from alpaca.common.enums import BaseURL

    return BaseURL.TRADING_STREAM_PAPER.value, BaseURL.TRADING_STREAM_LIVE.value
