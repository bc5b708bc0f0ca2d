"""The worker's HTTP endpoints: /metrics (Prometheus), /healthz (alive), /readyz (ready)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.observability.health import readiness
from worker.observability.http import HttpServer, Response
from worker.observability.sampler import StateSampler

if TYPE_CHECKING:
    from worker.app import Worker

JSON = "application/json"


class Endpoints:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.sampler = StateSampler(worker, worker.metrics)

    async def metrics(self) -> Response:
        await self.sampler.refresh()
        return Response(200, generate_latest(self.worker.metrics.registry), CONTENT_TYPE_LATEST)

    async def healthz(self) -> Response:
        return Response(200, b'{"status": "alive"}\n', JSON)

    async def readyz(self) -> Response:
        checks = await readiness(self.worker)
        failing = [c.part for c in checks if not c.ok]
        database = next(c for c in checks if c.part == "database")
        self.worker.metrics.database_up.set(1 if database.ok else 0)
        body = {
            "status": "not_ready" if failing else "ready",
            "failing": failing,
            "checks": {c.part: {"ok": c.ok, "detail": c.detail} for c in checks},
        }
        return Response(503 if failing else 200, json.dumps(body).encode() + b"\n", JSON)


def build_http_server(worker: Worker) -> HttpServer | None:
    """The server on TWAP_HTTP_HOST:TWAP_HTTP_PORT, or None when the port is 0 (off)."""
    settings = worker.settings
    if settings.http_port == 0:
        return None
    endpoints = Endpoints(worker)
    routes = {
        "/metrics": endpoints.metrics,
        "/healthz": endpoints.healthz,
        "/readyz": endpoints.readyz,
    }
    return HttpServer(settings.http_host, settings.http_port, routes)
