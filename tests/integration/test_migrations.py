"""Migrations and models agree, on both databases, and upgrades are idempotent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, Table, insert, inspect, select

from worker.store.engine import make_engine
from worker.store.migrations import head_revision, upgrade
from worker.store.tables import metadata, parents, slices


# The parents table as revision 0001 made it: without open_slices.
parents_0001 = Table(
    "parents", MetaData(),
    *(Column(c.name, c.type) for c in parents.columns if c.name != "open_slices"),
)


async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    """`alembic check` in a test: no difference between the migrations and tables.py."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
            revision = await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
    assert diff == []
    assert revision == head_revision(database_url)


async def test_upgrade_twice_is_harmless(database_url: str) -> None:
    """Running `twap migrate` on an up-to-date database changes nothing."""
    upgrade(database_url)
    upgrade(database_url)


async def test_upgrade_from_0001_counts_the_open_slices_of_existing_parents(
    db_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A database with parents in flight gets their open counts and the partial indexes."""
    if db_kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    else:
        url = await request.getfixturevalue("pg_databases").new(migrated=False)
    upgrade(url, "0001")
    now = datetime.now(UTC)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for pid, status in (("p-active", "active"), ("p-done", "completed")):
                await conn.execute(insert(parents_0001), [{
                    "parent_order_id": pid, "strategy_id": "s", "symbol": "AAPL", "side": "buy",
                    "qty": 30, "order_type": "market", "time_in_force": "day",
                    "duration_seconds": 180, "interval_seconds": 60, "distribution": "even_random",
                    "start_at": now, "trade_date": "2026-11-24", "total_slices": 3,
                    "status": status, "created_at": now, "updated_at": now}])
            statuses = {"p-active": ("submitted", "submitting", "scheduled"),
                        "p-done": ("submitted", "canceled", "expired")}
            await conn.execute(insert(slices), [
                {"parent_order_id": pid, "slice_num": n, "client_order_id": f"{pid}-{n}",
                 "qty": 10, "scheduled_time": now, "status": status, "attempts": 0,
                 "updated_at": now}
                for pid, row in statuses.items() for n, status in enumerate(row)
            ])
        upgrade(url)
        async with engine.connect() as conn:
            rows = await conn.execute(select(parents.c.parent_order_id, parents.c.open_slices))
            counts = {pid: count for pid, count in rows}
            indexes = await conn.run_sync(
                lambda sync: {i["name"] for i in inspect(sync).get_indexes("slices")})
    finally:
        await engine.dispose()
    assert counts == {"p-active": 2, "p-done": 0}
    assert {"ix_slices_scheduled_due", "ix_slices_submitting"} <= indexes
    assert "ix_slices_status_due" not in indexes
