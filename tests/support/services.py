"""Where the test services are, and what to do when one is missing.

TWAP_TEST_AMQP_URL / TWAP_TEST_DATABASE_URL override the defaults (the machine's local RabbitMQ
and PostgreSQL). Locally a missing service skips its tests; with CI=true it fails the run. With
neither service reachable and a Docker engine available, testcontainers starts them.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port),
                                      timeout=2):
            return True
    except OSError:
        return False


def missing(what: str, url: str) -> None:
    message = f"{what} is not reachable at {url}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a missing service fails the run)", pytrace=False)
    pytest.skip(message)


def _docker_started(kind: str) -> str | None:
    """Start a container through testcontainers when a Docker engine answers; else None."""
    try:
        import docker

        docker.from_env(timeout=2).ping()
    except Exception:
        return None
    try:
        if kind == "amqp":
            from testcontainers.rabbitmq import RabbitMqContainer

            rabbit = RabbitMqContainer("rabbitmq:3.10-management")
            rabbit.start()
            params = rabbit.get_connection_params()
            return f"amqp://guest:guest@{params.host}:{params.port}/"
        from testcontainers.postgres import PostgresContainer

        pg = PostgresContainer("postgres:15", driver="asyncpg")
        pg.start()
        return pg.get_connection_url()
    except Exception:
        return None


def amqp_url() -> str:
    url = os.environ.get("TWAP_TEST_AMQP_URL", DEFAULT_AMQP)
    if reachable(url, 5672):
        return url
    started = None if "TWAP_TEST_AMQP_URL" in os.environ else _docker_started("amqp")
    if started:
        return started
    missing("RabbitMQ", url)
    raise AssertionError("unreachable")


def pg_admin_url() -> str:
    url = os.environ.get("TWAP_TEST_DATABASE_URL", DEFAULT_PG)
    if reachable(url, 5432):
        return url
    started = None if "TWAP_TEST_DATABASE_URL" in os.environ else _docker_started("pg")
    if started:
        return started
    missing("PostgreSQL", url)
    raise AssertionError("unreachable")
