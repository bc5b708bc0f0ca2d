"""Fixtures of the store tests: a Store on each database `database_url` gives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from worker.store.repository import Store


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = Store.from_url(database_url)
    yield s
    await s.close()
