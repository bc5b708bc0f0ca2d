"""Floors: the I/O a benchmark needs, done with no worker logic, in the same run and against
the same services (database kind and server, RabbitMQ) as the benchmark.

A benchmark reports its figure as a ratio to its floor: absolute rates do not travel between
machines, ratios measured side by side do.

- intake: 1 parent row + its slice rows per request, 100 requests per transaction (PostgreSQL:
  asyncpg COPY; SQLite: executemany), into the worker's own tables and indexes; and consuming
  + acking as many requests from a quorum queue declared like `N.requests`. The floor is the
  lower of the two rates.
- dispatch: single-row UPDATE of a slice by primary key, autocommit, one connection, one after
  the other.

Each floor runs in a fresh database of its own (tables created from the worker's schema), so
the benchmark's database starts empty. A floor is measured once per process and database.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from bench.client import BenchClient
from bench.environment import Database, Services, asyncpg_dsn, fresh_database
from bench.loading import progress
from bench.workload import submit
from worker.messaging.topology import Names
from worker.settings import Settings
from worker.store.tables import metadata

REQUESTS_PER_TRANSACTION = 100

PARENT_COLUMNS = (
    "parent_order_id", "strategy_id", "symbol", "side", "qty", "order_type", "time_in_force",
    "duration_seconds", "interval_seconds", "distribution", "start_at", "trade_date",
    "request_id", "total_slices", "open_slices", "status", "created_at", "updated_at",
)  # fmt: skip
SLICE_COLUMNS = (
    "parent_order_id", "slice_num", "client_order_id", "qty", "scheduled_time", "status",
    "attempts", "updated_at",
)  # fmt: skip


@dataclass
class Floor:
    """A floor rate and how it was made up."""

    what: str  # the operation, in words
    per_s: float  # the floor: the lowest of `parts`
    parts: dict[str, float] = field(default_factory=dict)  # rate of each I/O measured
    count: int = 0  # operations timed per part

    def as_json(self) -> dict[str, Any]:
        return {"what": self.what, "per_s": self.per_s, "parts": self.parts, "count": self.count}


_measured: dict[tuple[str, str | None, int], Floor] = {}


# -- the rows --------------------------------------------------------------------------------
def _rows(requests: int, slices: int) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(parent row, slice rows) per request, shaped like the worker's; no planning logic."""
    now = datetime.now(UTC)
    start = now + timedelta(hours=1)
    run = uuid.uuid4().hex[:8]
    for k in range(requests):
        pid = f"{run}{k:016x}"
        parent = (
            pid, "bench", "AAPL", "buy", slices * 100, "market", "day", slices * 60, 60,
            "front_loaded", start, start.date().isoformat(), f"{run}-{k}", slices, slices,
            "active", now, now,
        )  # fmt: skip
        children = [
            (pid, n, f"{run}{k:010x}{n:06x}", 100, start + timedelta(seconds=60 * n),
             "scheduled", 0, now)
            for n in range(slices)
        ]  # fmt: skip
        yield parent, children


def _sqlite_value(value: Any) -> Any:
    # What SQLAlchemy's SQLite DateTime stores: naive UTC text.
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    return value


def _sqlite_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_sqlite_value(v) for v in row)


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


# -- PostgreSQL ------------------------------------------------------------------------------
async def _pg_schema(database: Database) -> None:
    engine = create_async_engine(database.url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()


async def _pg_copy(conn: asyncpg.Connection, requests: int, slices: int) -> float:
    """Rate of COPYing parents + slices, REQUESTS_PER_TRANSACTION requests per transaction."""
    batches: list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = []
    for parent, children in _rows(requests, slices):
        if not batches or len(batches[-1][0]) == REQUESTS_PER_TRANSACTION:
            batches.append(([], []))
        batches[-1][0].append(parent)
        batches[-1][1].extend(children)
    began = time.perf_counter()
    for parents, children in batches:
        async with conn.transaction():
            await conn.copy_records_to_table("parents", records=parents, columns=PARENT_COLUMNS)
            await conn.copy_records_to_table("slices", records=children, columns=SLICE_COLUMNS)
    return requests / (time.perf_counter() - began)


async def _pg_updates(conn: asyncpg.Connection, count: int) -> float:
    """Rate of single-row UPDATEs by primary key, autocommit, one after the other."""
    keys = await conn.fetch(
        "SELECT parent_order_id, slice_num FROM slices ORDER BY scheduled_time LIMIT $1", count
    )
    update = await conn.prepare(
        "UPDATE slices SET status = 'submitted', attempts = 1, broker_order_id = $3, "
        "sent_at = $4, updated_at = $4 WHERE parent_order_id = $1 AND slice_num = $2"
    )
    began = time.perf_counter()
    for pid, num in keys:
        await update.fetch(pid, num, f"b-{pid}-{num}", datetime.now(UTC))
    return len(keys) / (time.perf_counter() - began)


async def _pg_floor(services: Services, requests: int, slices: int, updates: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="twap-bench-floor-") as tmp:
        async with fresh_database(services, Path(tmp)) as database:
            await _pg_schema(database)
            conn = await asyncpg.connect(asyncpg_dsn(database.url))
            try:
                copy = await _pg_copy(conn, requests, slices)
                update = await _pg_updates(conn, updates)
            finally:
                await conn.close()
    return [copy, update]


# -- SQLite ----------------------------------------------------------------------------------
def _sqlite_floor_sync(path: Path, requests: int, slices: int, updates: int) -> list[float]:
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    engine.dispose()
    # The worker's settings (engine.py): WAL, synchronous=NORMAL, immediate write locks.
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        insert_parent = _insert_sql("parents", PARENT_COLUMNS)
        insert_slice = _insert_sql("slices", SLICE_COLUMNS)
        rows = [(_sqlite_row(p), [_sqlite_row(c) for c in cs]) for p, cs in _rows(requests, slices)]
        began = time.perf_counter()
        for first in range(0, len(rows), REQUESTS_PER_TRANSACTION):
            batch = rows[first : first + REQUESTS_PER_TRANSACTION]
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert_parent, [p for p, _ in batch])
            db.executemany(insert_slice, [c for _, cs in batch for c in cs])
            db.execute("COMMIT")
        copy = requests / (time.perf_counter() - began)
        keys = db.execute(
            "SELECT parent_order_id, slice_num FROM slices ORDER BY scheduled_time LIMIT ?",
            (updates,),
        ).fetchall()
        update = (
            "UPDATE slices SET status = 'submitted', attempts = 1, broker_order_id = ?, "
            "sent_at = ?, updated_at = ? WHERE parent_order_id = ? AND slice_num = ?"
        )
        began = time.perf_counter()
        for pid, num in keys:
            now = _sqlite_value(datetime.now(UTC))
            db.execute(update, (f"b-{pid}-{num}", now, now, pid, num))
        return [copy, len(keys) / (time.perf_counter() - began)]
    finally:
        db.close()


async def _sqlite_floor(requests: int, slices: int, updates: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="twap-bench-floor-") as tmp:
        path = Path(tmp) / "floor.db"
        return await asyncio.to_thread(_sqlite_floor_sync, path, requests, slices, updates)


async def _database_floor(
    services: Services, requests: int, slices: int, updates: int
) -> tuple[str, list[float]]:
    url = services.database_url
    if url is None or url.startswith("sqlite"):
        return "sqlite", await _sqlite_floor(requests, slices, updates)
    return "postgresql", await _pg_floor(services, requests, slices, updates)


# -- RabbitMQ --------------------------------------------------------------------------------
async def amqp_consume_floor(services: Services, messages: int, slices: int) -> float:
    """Rate of consuming + acking `messages` submit requests from a quorum queue declared like
    `N.requests`, with the worker's prefetch. Publishing them beforehand is not timed."""
    names = Names(f"bench_floor_{uuid.uuid4().hex[:8]}")
    client = BenchClient(services.amqp_url, names)
    await client.open([], set())
    try:
        start = time.time() + 3600
        await client.publish_many([submit("floor", k, start_at=start, slices=slices)
                                   for k in range(messages)])  # fmt: skip
        assert client.connection is not None
        channel = await client.connection.channel()
        await channel.set_qos(prefetch_count=Settings.model_fields["prefetch"].default)
        queue = await channel.get_queue(names.requests)
        done = asyncio.Event()
        received = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal received
            await message.ack()
            received += 1
            if received >= messages:
                done.set()

        began = time.perf_counter()
        tag = await queue.consume(on_message)
        await asyncio.wait_for(done.wait(), timeout=60 + messages / 500)
        rate = messages / (time.perf_counter() - began)
        await queue.cancel(tag)
        await channel.close()
        return rate
    finally:
        await client.close()


# -- the floors ------------------------------------------------------------------------------
async def intake_floor(services: Services, requests: int, slices: int) -> Floor:
    """Writing the rows of `requests` requests, or consuming them: whichever is slower."""
    key = ("intake", services.database_url, requests)
    if key not in _measured:
        progress(f"floor: writing and consuming {requests:,} requests of {slices} slices")
        kind, (copy, _) = await _database_floor(services, requests, slices, 0)
        consume = await amqp_consume_floor(services, requests, slices)
        write = "COPY" if kind == "postgresql" else "executemany"
        _measured[key] = Floor(
            f"{kind} {write} of 1 parent + {slices} slice rows per request, "
            f"{REQUESTS_PER_TRANSACTION} requests per transaction; or AMQP consume + ack",
            round(min(copy, consume), 1),
            {
                f"db_{write.lower()}_requests_per_s": round(copy, 1),
                "amqp_consume_ack_per_s": round(consume, 1),
            },
            requests,
        )
    return _measured[key]


async def dispatch_floor(services: Services, updates: int) -> Floor:
    """Single-row UPDATEs by primary key in autocommit, one connection."""
    key = ("dispatch", services.database_url, updates)
    if key not in _measured:
        progress(f"floor: {updates:,} single-row UPDATEs by primary key, autocommit")
        rows_needed = -(-updates // 30)
        kind, (_, update) = await _database_floor(services, rows_needed, 30, updates)
        _measured[key] = Floor(
            f"{kind} single-row UPDATE by primary key, autocommit, one connection",
            round(update, 1),
            {"db_update_per_s": round(update, 1)},
            updates,
        )
    return _measured[key]


def ratio(measured: float | None, floor: Floor) -> float | None:
    if measured is None or floor.per_s <= 0:
        return None
    return round(measured / floor.per_s, 4)
