"""Fixtures of the packaging tests: the two wheels, and a fresh virtualenv with both installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.installed import SCHEMAS, build_wheel, install_in_fresh_venv


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worker's wheel (twap-worker)."""
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def schemas_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wire contract's wheel (twap-schemas), which the worker's depends on."""
    return build_wheel(tmp_path_factory.mktemp("dist-schemas"), SCHEMAS)


@pytest.fixture(scope="session")
def venv(wheel: Path, schemas_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh virtualenv with both wheels installed."""
    return install_in_fresh_venv([schemas_wheel, wheel], tmp_path_factory.mktemp("venv"))
