"""The real `twap` CLI (typer's CliRunner, on a thread) against real RabbitMQ and databases."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.support.harness import Harness
from worker.cli import commands  # noqa: F401  (registers the operator subcommands)
from worker.cli.app import app


@pytest.fixture
def db_kind() -> str:
    """CLI tests run on SQLite; the ones about reads opt into PostgreSQL too."""
    return "sqlite"


@dataclass
class Cli:
    env: dict[str, str]

    async def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        """Run `twap *args` as an operator would (CliRunner runs synchronously: a thread)."""
        runner = CliRunner()
        return await asyncio.to_thread(
            runner.invoke,
            app,
            list(args),
            input=input,
            env={**self.env, **(env or {})},
            catch_exceptions=False,
        )

    async def json(self, *args: str) -> Any:
        result = await self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


def cli_env(harness: Harness) -> dict[str, str]:
    s = harness.settings
    return {
        "TWAP_AMQP_URL": s.amqp_url.get_secret_value(),
        "TWAP_DATABASE_URL": s.database_url.get_secret_value(),
        "TWAP_NAMESPACE": s.namespace,
        "TWAP_HTTP_PORT": "0",
    }


@pytest.fixture
def cli(harness: Harness) -> Cli:
    return Cli(cli_env(harness))


async def depth(harness: Harness, queue: str) -> int:
    """Ready messages in `queue` (passive declare)."""
    assert harness.connection is not None
    channel = await harness.connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await channel.close()
