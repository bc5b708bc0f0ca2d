"""A transaction the database rolled back for a conflict with another (PostgreSQL's
deadlock_detected 40P01, serialization_failure 40001) is run again, whatever class the driver
gives the error; other errors are not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from worker.runtime.dbretry import CONFLICT_RETRIES, with_db_retry
from worker.store.engine import is_conflict


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _wrapped(sqlstate: str) -> DBAPIError:
    # A plain DBAPIError (not OperationalError): how a driver classes a conflict varies.
    return DBAPIError("UPDATE parents ...", {}, _DriverError(sqlstate))


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_deadlock_and_serialization_failure_are_conflicts(sqlstate: str) -> None:
    assert is_conflict(_wrapped(sqlstate))


def test_other_errors_are_not_conflicts() -> None:
    assert not is_conflict(_wrapped("23505"))
    assert not is_conflict(IntegrityError("INSERT ...", {}, Exception("duplicate key")))
    assert not is_conflict(ValueError("no"))


async def test_a_conflict_is_run_again() -> None:
    calls: list[int] = []

    async def call() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise _wrapped("40P01")
        return 7

    # A deadline already past: a conflict is not an outage, it is run again all the same.
    assert await with_db_retry(call, clock=_now, deadline=_now(), what="t") == 7
    assert len(calls) == 3


async def test_conflicts_without_end_are_given_up() -> None:
    calls: list[int] = []

    async def call() -> int:
        calls.append(1)
        raise _wrapped("40001")

    with pytest.raises(DBAPIError):
        await with_db_retry(call, clock=_now, deadline=None, what="t")
    assert len(calls) == CONFLICT_RETRIES + 1


async def test_a_constraint_violation_is_not_run_again() -> None:
    calls: list[int] = []

    async def call() -> int:
        calls.append(1)
        raise _wrapped("23505")

    with pytest.raises(DBAPIError):
        await with_db_retry(call, clock=_now, deadline=None, what="t")
    assert len(calls) == 1
