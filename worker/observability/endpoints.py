"""The worker's HTTP endpoints: /metrics (Prometheus), /healthz (alive), /readyz (ready)."""

from __future__ import annotations

import json

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.observability.health import readiness
from worker.observability.http import HttpServer, Response
from worker.observability.sampler import StateSampler
from worker.observability.snapshot import Observed

JSON = "application/json"


class Endpoints:
    def __init__(self, observed: Observed) -> None:
        self.observed = observed
        self.sampler = StateSampler(observed, observed.metrics)

    async def metrics(self) -> Response:
        await self.sampler.refresh()
        return Response(200, generate_latest(self.observed.metrics.registry), CONTENT_TYPE_LATEST)

    async def healthz(self) -> Response:
        return Response(200, b'{"status": "alive"}\n', JSON)

    async def readyz(self) -> Response:
        checks = await readiness(self.observed)
        failing = [c.part for c in checks if not c.ok]
        database = next(c for c in checks if c.part == "database")
        self.observed.metrics.database_up.set(1 if database.ok else 0)
        body = {
            "status": "not_ready" if failing else "ready",
            "failing": failing,
            "checks": {c.part: {"ok": c.ok, "detail": c.detail} for c in checks},
        }
        return Response(503 if failing else 200, json.dumps(body).encode() + b"\n", JSON)


def build_http_server(observed: Observed, host: str, port: int) -> HttpServer | None:
    """The server on TWAP_HTTP_HOST:TWAP_HTTP_PORT, or None when the port is 0 (off)."""
    if port == 0:
        return None
    endpoints = Endpoints(observed)
    routes = {
        "/metrics": endpoints.metrics,
        "/healthz": endpoints.healthz,
        "/readyz": endpoints.readyz,
    }
    return HttpServer(host, port, routes)
