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


def unavailable(message: str, why_required: str) -> None:
    """Skip locally; with CI=true fail the run instead, saying why it is required there."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: {why_required})", pytrace=False)
    pytest.skip(message)


def missing(what: str, url: str) -> None:
    unavailable(f"{what} is not reachable at {url}", "a missing service fails the run")


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


def _service(what: str, variable: str, default: str, port: int, kind: str) -> str:
    """The URL of a reachable service: the configured one, else a container, else missing()."""
    url = os.environ.get(variable, default)
    if reachable(url, port):
        return url
    started = None if variable in os.environ else _docker_started(kind)
    if started:
        return started
    missing(what, url)
    raise AssertionError("unreachable")


def amqp_url() -> str:
    return _service("RabbitMQ", "TWAP_TEST_AMQP_URL", DEFAULT_AMQP, 5672, "amqp")


def pg_admin_url() -> str:
    return _service("PostgreSQL", "TWAP_TEST_DATABASE_URL", DEFAULT_PG, 5432, "pg")
