"""Opening the database for one operator command, with one-line failure reasons."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from worker.store.repository import Store


class DatabaseUnavailable(Exception):
    """The database could not be reached or read; the message is one line, password masked."""


def describe(exc: BaseException) -> str:
    """The driver's own first line, without SQLAlchemy's statement and link trailer."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    text = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    lowered = text.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        text += " (is the schema migrated? run `twap migrate`)"
    return text


def _missing_sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    return None if path.exists() else path


@asynccontextmanager
async def open_store(url: str, masked_url: str) -> AsyncIterator[Store]:
    """A Store for one operator command; outages and SQL errors become DatabaseUnavailable.

    A missing SQLite file is reported rather than created empty.
    """
    missing = _missing_sqlite_file(url)
    if missing is not None:
        raise DatabaseUnavailable(
            f"no database at {masked_url} ({missing} does not exist; run `twap migrate` or "
            "set TWAP_DATABASE_URL)"
        )
    store = Store.from_url(url, pool_size=2)
    try:
        try:
            await store.ping()
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseUnavailable(
                f"database unreachable at {masked_url}: {describe(exc)}"
            ) from None
        try:
            yield store
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseUnavailable(f"database error at {masked_url}: {describe(exc)}") from None
    finally:
        await store.close()
