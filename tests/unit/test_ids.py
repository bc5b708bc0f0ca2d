"""Deterministic ids, pinned by golden vectors so they never change by accident."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from worker.core import ids


def _text(**overrides: Any) -> str:
    fields: dict[str, Any] = dict(
        strategy_id="alpha_1", symbol="AAPL", side="buy", qty=1000, order_type="limit",
        limit_price=Decimal("150.00"), stop_price=None, time_in_force="day",
        duration_seconds=3600, interval_seconds=60, max_slice_qty=None,
        distribution="front_loaded", start_at=None, trade_date=date(2024, 5, 1), request_id=None,
    )
    fields.update(overrides)
    return ids.canonical_parent_text(**fields)


def test_golden_parent_is_sha256_prefix() -> None:
    """The parent id is exactly the first 24 hex characters of SHA-256 (cross-checked)."""
    import hashlib

    assert hashlib.sha256(_text().encode()).hexdigest()[:24] == GOLDEN_PARENT


def test_canonical_text_golden() -> None:
    """The canonical text: one key=value line per plan-defining field, fixed order."""
    assert _text() == (
        "strategy_id=alpha_1\nsymbol=AAPL\nside=buy\nqty=1000\norder_type=limit\n"
        "limit_price=150\nstop_price=\ntime_in_force=day\nduration_seconds=3600\n"
        "interval_seconds=60\nmax_slice_qty=\ndistribution=front_loaded\ntrade_date=2024-05-01"
    )


def test_parent_id_golden_vectors() -> None:
    """Golden parent ids: first 24 hex of SHA-256 over the canonical text."""
    assert ids.parent_order_id(_text()) == GOLDEN_PARENT
    with_start = _text(start_at=datetime(2024, 5, 1, 14, 30, tzinfo=UTC), request_id="r-1")
    assert ids.parent_order_id(with_start) == GOLDEN_PARENT_WITH_START


def test_client_order_id_golden_vectors() -> None:
    """Golden child ids: first 24 hex of SHA-256 over 'parent:slice'."""
    assert ids.client_order_id(GOLDEN_PARENT, 0) == GOLDEN_CHILD_0
    assert ids.client_order_id(GOLDEN_PARENT, 29) == GOLDEN_CHILD_29
    assert len(GOLDEN_CHILD_0) == 24


def test_prices_normalize_but_precision_is_kept() -> None:
    """150, 150.0 and 150.00 hash alike; 150.004 differs."""
    same = {ids.parent_order_id(_text(limit_price=Decimal(p))) for p in ("150", "150.0", "150.00")}
    assert len(same) == 1
    assert ids.parent_order_id(_text(limit_price=Decimal("150.004"))) not in same


def test_every_plan_field_changes_the_id() -> None:
    """Changing any plan-defining field gives another parent id."""
    base = ids.parent_order_id(_text())
    variants = [
        _text(strategy_id="beta"), _text(symbol="MSFT"), _text(side="sell"), _text(qty=1001),
        _text(order_type="stop_limit", stop_price=Decimal("149")), _text(time_in_force="gtc"),
        _text(duration_seconds=3601), _text(interval_seconds=30), _text(max_slice_qty=10),
        _text(distribution="even_random"), _text(trade_date=date(2024, 5, 2)),
        _text(request_id="x"), _text(start_at=datetime(2024, 5, 1, tzinfo=UTC)),
        _text(slice_end="keep"), _text(catch_up=False),
        _text(max_catch_up_ratio=Decimal("2.5")), _text(keep_working_after_end=True),
    ]
    assert len({ids.parent_order_id(v) for v in variants} | {base}) == len(variants) + 1


def test_execution_fields_at_their_defaults_keep_every_existing_id() -> None:
    """slice_end, catch_up, max_catch_up_ratio and keep_working_after_end are in the text only
    when they differ from their defaults: the golden ids above stay, written out or not."""
    explicit = _text(slice_end="cancel", catch_up=True, max_catch_up_ratio=Decimal("2.00"),
                     keep_working_after_end=False)
    assert ids.parent_order_id(explicit) == GOLDEN_PARENT
    assert _text(slice_end="keep", catch_up=False, max_catch_up_ratio=Decimal("1.50"),
                 keep_working_after_end=True).endswith(
        "trade_date=2024-05-01\nslice_end=keep\ncatch_up=false\nmax_catch_up_ratio=1.5\n"
        "keep_working_after_end=true")


def test_start_at_is_hashed_in_utc() -> None:
    """The same instant written with another offset is the same parent."""
    from datetime import timedelta, timezone

    utc = datetime(2024, 5, 1, 14, 30, tzinfo=UTC)
    other = utc.astimezone(timezone(timedelta(hours=2)))
    assert _text(start_at=utc) == _text(start_at=other)


GOLDEN_PARENT = "e19991b8f4dca91ebb9a621d"
GOLDEN_PARENT_WITH_START = "142a039fd870ae83ce5a99bb"
GOLDEN_CHILD_0 = "7817408d0ff5cd7bce2b0ffa"
GOLDEN_CHILD_29 = "419f88cfe090b38882e3060b"


def test_many_client_order_ids_are_the_single_ones() -> None:
    many = ids.client_order_ids(GOLDEN_PARENT, 30)
    assert many[0] == GOLDEN_CHILD_0 and many[29] == GOLDEN_CHILD_29
    assert many == [ids.client_order_id(GOLDEN_PARENT, n) for n in range(30)]
    assert ids.client_order_ids(GOLDEN_PARENT, 0) == []
