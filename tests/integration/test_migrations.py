"""Migrations and models agree, on both databases, and upgrades are idempotent."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from worker.store.engine import make_engine
from worker.store.migrations import head_revision, upgrade
from worker.store.tables import metadata


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
