"""`twap health` exit codes and `twap queues` against the real services."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from tests.cli.conftest import Cli
from tests.support.harness import Harness


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def readyz_503() -> AsyncIterator[int]:
    """An HTTP server that answers every request 503, like a worker that is not ready."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n"
            b"Connection: close\r\n\r\nnot ready: recovery"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


async def test_queues_lists_depth_and_consumers(harness: Harness, cli: Cli) -> None:
    """queues: every queue of the namespace with its consumers (the worker's two)."""
    await harness.start_worker()
    stats = {q["name"]: q for q in await cli.json("queues")}
    names = harness.names
    assert set(stats) == {names.requests, names.control, names.dlq}
    assert stats[names.requests]["consumers"] == 1
    assert stats[names.control]["consumers"] == 1
    assert stats[names.dlq]["consumers"] == 0
    plain = await cli("queues")
    assert plain.stdout.splitlines()[0].split() == ["queue", "role", "ready", "consumers"]


async def test_health_is_0_with_a_consuming_worker(harness: Harness, cli: Cli) -> None:
    """RabbitMQ and the database answer and a worker consumes N.requests: exit 0."""
    await harness.start_worker()
    result = await cli("health")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("healthy: ")


async def test_health_fails_without_a_consumer(harness: Harness, cli: Cli) -> None:
    """The queues exist but no worker consumes them: one line, exit 1."""
    result = await cli("health")
    assert result.exit_code == 1
    assert result.stderr == (
        f"twap: unhealthy: no worker is consuming {harness.names.requests} (0 waiting)\n"
    )


async def test_health_fails_with_rabbitmq_unreachable_password_masked(cli: Cli) -> None:
    """Unreachable RabbitMQ: exit 3 and a one-line reason whose URL hides the password."""
    url = f"amqp://ops:s3cret-pw@127.0.0.1:{closed_port()}/"
    result = await cli("health", env={"TWAP_AMQP_URL": url})
    assert result.exit_code == 3
    assert "RabbitMQ unreachable at amqp://ops:***@127.0.0.1:" in result.stderr
    assert "s3cret-pw" not in result.output
    assert len(result.stderr.splitlines()) == 1


async def test_database_unreachable_is_one_masked_line(cli: Cli) -> None:
    """A read command with the database away: exit 3, the URL's password masked."""
    url = f"postgresql+asyncpg://ops:s3cret-pw@127.0.0.1:{closed_port()}/twap"
    result = await cli("list", env={"TWAP_DATABASE_URL": url})
    assert result.exit_code == 3
    assert result.stderr.startswith("twap: database unreachable at postgresql+asyncpg://ops:***@")
    assert "s3cret-pw" not in result.output


async def test_health_uses_readyz_when_a_server_answers(
    harness: Harness, cli: Cli, readyz_503: int
) -> None:
    """An HTTP /readyz answering 503 on the configured port makes health fail with its body."""
    await harness.start_worker()
    env = {"TWAP_HTTP_HOST": "127.0.0.1", "TWAP_HTTP_PORT": str(readyz_503)}
    result = await cli("health", env=env)
    assert result.exit_code == 1
    assert "/readyz answers 503: not ready: recovery" in result.stderr
