"""Fixtures of the packaging tests: the wheel, and a fresh virtualenv with it installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.packaging.installed import build_wheel, install_in_fresh_venv


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh virtualenv with the wheel installed."""
    return install_in_fresh_venv(wheel, tmp_path_factory.mktemp("venv"))
