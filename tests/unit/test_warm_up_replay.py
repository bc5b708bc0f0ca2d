"""The replay of the warm-up on a pooled connection (store/warmup.Replay), on a stand-in for
the driver connection: once per connection, and a connection that fails it is either still
usable (the statement failed) or handed back to the pool as lost (the connection failed)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import DisconnectionError

from worker.store.warmup import WARMED, Replay


class Record:
    def __init__(self) -> None:
        self.info: dict[str, Any] = {}


class Cursor:
    def __init__(self, driver: Driver) -> None:
        self.driver = driver

    def execute(self, statement: str, parameters: Any) -> None:
        if statement in self.driver.failing:
            raise RuntimeError(f"cannot run {statement}")
        self.driver.ran.append((statement, parameters))

    def close(self) -> None:
        self.driver.cursors_closed += 1


class Driver:
    def __init__(self, *, failing: tuple[str, ...] = (), lost: bool = False) -> None:
        self.failing = failing
        self.lost = lost
        self.ran: list[tuple[str, Any]] = []
        self.rollbacks = 0
        self.cursors_closed = 0

    def cursor(self) -> Cursor:
        return Cursor(self)

    def rollback(self) -> None:
        if self.lost:
            raise ConnectionResetError("connection reset by peer")
        self.rollbacks += 1


def replay_of(*statements: str) -> Replay:
    replay = Replay()
    for number, statement in enumerate(statements):
        replay.record(None, None, statement, (number,), None, False)
    return replay


def test_a_new_connection_gets_every_recorded_statement_in_order_then_a_rollback() -> None:
    replay, driver, record = replay_of("A", "B", "C"), Driver(), Record()
    replay._on_checkout(driver, record, None)
    assert driver.ran == [("A", (0,)), ("B", (1,)), ("C", (2,))]
    assert driver.rollbacks == 1
    assert driver.cursors_closed == 1
    assert record.info[WARMED] is True


def test_a_connection_is_warmed_once_however_often_it_is_checked_out() -> None:
    replay, driver, record = replay_of("A"), Driver(), Record()
    for _ in range(3):
        replay._on_checkout(driver, record, None)
    assert driver.ran == [("A", (0,))]
    assert driver.rollbacks == 1


def test_a_connection_marked_warmed_by_the_warm_up_itself_gets_nothing() -> None:
    replay, driver, record = replay_of("A"), Driver(), Record()
    record.info[WARMED] = True
    replay._on_checkout(driver, record, None)
    assert driver.ran == []
    assert driver.rollbacks == 0


def test_before_anything_was_recorded_a_connection_is_left_unmarked() -> None:
    # Checked out before the warm-up ran: it is warmed at a later checkout.
    replay, driver, record = Replay(), Driver(), Record()
    replay._on_checkout(driver, record, None)
    assert WARMED not in record.info
    replay.record(None, None, "A", (), None, False)
    replay._on_checkout(driver, record, None)
    assert driver.ran == [("A", ())]


def test_a_failing_statement_stops_the_replay_is_logged_and_leaves_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    replay, driver, record = replay_of("A", "B", "C"), Driver(failing=("B",)), Record()
    replay._on_checkout(driver, record, None)  # no exception: the checkout goes on
    assert driver.ran == [("A", (0,))]
    assert driver.rollbacks == 1
    assert record.info[WARMED] is True  # not tried again at every checkout
    [logged] = [r for r in caplog.records if r.getMessage() == "store.connection_warm_up_failed"]
    assert "cannot run B" in logged.error  # type: ignore[attr-defined]


def test_a_connection_lost_during_the_replay_is_given_up_as_a_disconnection() -> None:
    # DisconnectionError from a checkout handler: the pool drops this connection and
    # opens another for the same caller.
    replay, driver, record = replay_of("A"), Driver(lost=True), Record()
    with pytest.raises(DisconnectionError, match="connection reset by peer"):
        replay._on_checkout(driver, record, None)
    assert driver.cursors_closed == 1


def test_a_new_warm_up_records_afresh() -> None:
    replay = replay_of("A", "B")
    replay.sent.clear()
    replay.record(None, None, "C", (), None, False)
    driver = Driver()
    replay._on_checkout(driver, Record(), None)
    assert driver.ran == [("C", ())]
