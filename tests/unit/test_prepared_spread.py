"""The bookkeeping of store/prepared.py on a stand-in adapter: which texts join the shared list,
how many a checkout prepares, and when a connection is done. The real thing on PostgreSQL is
tests/integration/test_prepared_spread.py."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import util
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.util import greenlet_spawn

from worker.store.prepared import PreparedSpread


class Record:
    def __init__(self) -> None:
        self.info: dict[str, Any] = {}


class Session:
    def __init__(self) -> None:
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed


class Refused(Exception):
    """Shaped like asyncpg's server errors: a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


class Adapter:
    """What the listeners touch of SQLAlchemy's asyncpg adapter: its cache, `_prepare` and
    the asyncpg connection's `is_closed`. `fail` maps a text to what preparing it raises."""

    def __init__(self, capacity: int = 100, *texts: str) -> None:
        self._prepared_statement_cache = util.LRUCache(capacity)
        for t in texts:
            self._prepared_statement_cache[t] = ("stmt", [], 1.0)
        self._connection = Session()
        self.prepared: list[str] = []
        self.fail: dict[str, BaseException] = {}
        self.meanwhile: list[str] = []  # texts another connection checks in during a prepare
        self.spread: PreparedSpread | None = None

    async def _prepare(self, text: str, _timestamp: float) -> None:
        if self.meanwhile and self.spread is not None:
            self.spread.on_checkin(Adapter(100, *self.meanwhile), Record())
            self.meanwhile = []
        if text in self.fail:
            raise self.fail[text]
        self.prepared.append(text)
        self._prepared_statement_cache[text] = ("stmt", [], 1.0)


async def checkout(spread: PreparedSpread, adapter: Adapter, record: Record) -> None:
    await greenlet_spawn(spread.on_checkout, adapter, record, None)


def test_the_list_stops_at_four_fifths_of_a_connection_cache() -> None:
    spread = PreparedSpread()
    spread.on_checkin(Adapter(10, *[f"t{n}" for n in range(12)]), Record())
    assert list(spread.texts) == ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"]


def test_texts_join_in_the_order_first_met_and_once() -> None:
    spread = PreparedSpread()
    spread.on_checkin(Adapter(100, "a", "b"), Record())
    spread.on_checkin(Adapter(100, "c", "a"), Record())
    assert list(spread.texts) == ["a", "b", "c"]


async def test_each_checkout_prepares_two_lacking_texts_then_none() -> None:
    spread = PreparedSpread()
    spread.on_checkin(Adapter(100, "a", "b", "c", "d", "e"), Record())
    adapter, record = Adapter(100, "b"), Record()
    await checkout(spread, adapter, record)
    assert adapter.prepared == ["a", "c"]
    await checkout(spread, adapter, record)
    assert adapter.prepared == ["a", "c", "d", "e"]
    await checkout(spread, adapter, record)  # all held: no more work, and no scan either
    assert adapter.prepared == ["a", "c", "d", "e"]
    assert record.info["twap.prepared_done"] == 5


async def test_a_connection_done_with_the_list_takes_texts_that_join_later() -> None:
    spread = PreparedSpread()
    spread.on_checkin(Adapter(100, "a"), Record())
    adapter, record = Adapter(100), Record()
    await checkout(spread, adapter, record)
    spread.on_checkin(Adapter(100, "z"), Record())
    await checkout(spread, adapter, record)
    assert adapter.prepared == ["a", "z"]


def test_a_check_in_with_an_unchanged_cache_is_not_read_again() -> None:
    spread = PreparedSpread()
    adapter, record = Adapter(100, "a"), Record()
    spread.on_checkin(adapter, record)
    spread.texts.clear()  # were the cache read again, "a" would come back
    spread.on_checkin(adapter, record)
    assert list(spread.texts) == []


def test_an_invalidated_connection_checks_in_with_no_adapter() -> None:
    spread = PreparedSpread()
    spread.on_checkin(None, Record())
    assert list(spread.texts) == []


async def test_texts_that_join_during_a_prepare_are_prepared_at_the_next_checkout() -> None:
    spread = PreparedSpread()
    spread.on_checkin(Adapter(100, "a"), Record())
    adapter, record = Adapter(100), Record()
    adapter.spread, adapter.meanwhile = spread, ["late"]
    await checkout(spread, adapter, record)
    assert adapter.prepared == ["a"]
    assert record.info["twap.prepared_done"] == 1  # what was listed when it started
    await checkout(spread, adapter, record)
    assert adapter.prepared == ["a", "late"]


async def test_a_text_the_server_refuses_is_dropped_and_the_next_one_prepared() -> None:
    spread = PreparedSpread()
    spread.on_checkin(Adapter(100, "temp", "b"), Record())
    adapter, record = Adapter(100), Record()
    adapter.fail["temp"] = Refused("42P01")  # undefined_table: another session's temp table
    await checkout(spread, adapter, record)
    assert adapter.prepared == ["b"]
    assert spread.failed == {"temp"}
    other = Adapter(100)
    await checkout(spread, other, Record())
    assert other.prepared == ["b"]  # never offered again


@pytest.mark.parametrize("error", [Refused("08006"), Refused("57P01"), TimeoutError()])
async def test_a_session_error_or_a_timeout_drops_nothing_and_stops_this_checkout(
    error: BaseException,
) -> None:
    spread = PreparedSpread()
    spread.on_checkin(Adapter(100, "a", "b"), Record())
    adapter, record = Adapter(100), Record()
    adapter.fail["a"] = error
    await checkout(spread, adapter, record)
    assert (adapter.prepared, spread.failed) == ([], set())
    assert "twap.prepared_done" not in record.info
    del adapter.fail["a"]
    await checkout(spread, adapter, record)  # tried again later
    assert adapter.prepared == ["a", "b"]


async def test_a_closed_session_is_left_to_the_callers_statement() -> None:
    spread = PreparedSpread()
    spread.on_checkin(Adapter(100, "a", "b"), Record())
    adapter, record = Adapter(100), Record()
    adapter.fail["a"] = ConnectionResetError("gone")
    adapter._connection.closed = True
    await checkout(spread, adapter, record)  # no error here: the caller's statement meets it
    assert (adapter.prepared, spread.failed) == ([], set())
    assert "twap.prepared_done" not in record.info


async def test_a_missing_greenlet_is_raised_not_taken_for_a_bad_text() -> None:
    spread = PreparedSpread()
    spread.on_checkin(Adapter(100, "a"), Record())
    adapter = Adapter(100)
    adapter.fail["a"] = MissingGreenlet("no greenlet")
    with pytest.raises(MissingGreenlet):
        await checkout(spread, adapter, Record())
    assert spread.failed == set()


def test_a_full_list_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="worker.store.prepared")
    spread = PreparedSpread()
    spread.on_checkin(Adapter(10, *[f"t{n}" for n in range(9)]), Record())
    spread.on_checkin(Adapter(10, "u1", "u2"), Record())
    assert len(spread.texts) == 8
    assert [r.getMessage() for r in caplog.records] == ["store.prepared_list_full"]
