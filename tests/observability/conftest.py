"""Fixtures of the observability tests: a free TCP port for the worker's HTTP server."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def http_port() -> int:
    """A port nothing listens on right now (the OS picks it; the worker binds it next)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
