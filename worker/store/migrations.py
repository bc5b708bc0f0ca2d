"""Run Alembic from code: `twap migrate`, the tests, and the worker's start-up check.

The migration scripts live in the repository's top-level alembic/ folder, where `alembic` run
from a clone finds them (alembic.ini). A wheel carries the same files inside this package, as
worker/store/alembic (pyproject maps the folder there), because an installed package has no
repository around it.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command

PACKAGED = Path(__file__).resolve().with_name("alembic")  # in a wheel
CLONE = Path(__file__).resolve().parents[2] / "alembic"  # in a clone, editable install included


class MigrationsMissing(RuntimeError):
    pass


def script_location() -> Path:
    """The folder holding env.py and versions/: the packaged copy first, then the clone's."""
    for folder in (PACKAGED, CLONE):
        # env.py, not the folder alone: beside an installed package, parents[2]/alembic is
        # site-packages/alembic, the Alembic library itself.
        if (folder / "env.py").is_file():
            return folder
    raise MigrationsMissing(
        f"no migration scripts (alembic/env.py) in {PACKAGED} or {CLONE}: "
        "reinstall twap-worker from a wheel or run from a clone"
    )


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision`. Blocking; inside an event loop it runs on a thread
    (Alembic's environment starts a loop of its own)."""
    config = alembic_config(database_url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, revision)
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(command.upgrade, config, revision).result()


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
