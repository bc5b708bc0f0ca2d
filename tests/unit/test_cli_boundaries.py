"""The operator CLI keeps to the boundaries: AMQP through worker.messaging, SQL through
worker.store."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "worker" / "cli"
FORBIDDEN = ("aio_pika", "aiormq", "pamqp", "sqlalchemy", "asyncpg", "aiosqlite")


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda p: p.name)
def test_cli_modules_import_no_driver(path: Path) -> None:
    """No worker/cli module imports a RabbitMQ or database driver directly."""
    tree = ast.parse(path.read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [m for m in imported if m.split(".")[0] in FORBIDDEN]
