"""`twap health`: exit 0 when RabbitMQ and the database answer and a worker is consuming."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

import typer

from worker.cli import output
from worker.cli.app import app
from worker.cli.exits import CODES_HELP, FAILED, OK, UNREACHABLE
from worker.cli.runner import amqp, database, die, load_settings, run
from worker.observability.probe import http_get
from worker.settings import Settings


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    code: int = FAILED  # exit code when this check fails


async def _rabbit(settings: Settings) -> list[Check]:
    from worker.messaging.ops import BrokerUnavailable

    try:
        async with amqp(settings) as link:
            stats = await link.queue_stats(link.names.requests)
    except BrokerUnavailable as exc:
        return [Check("rabbitmq", False, str(exc), UNREACHABLE)]
    checks = [Check("rabbitmq", True, "RabbitMQ answers")]
    if not stats.exists:
        checks.append(
            Check(
                "worker",
                False,
                f"{stats.name} does not exist (no worker has "
                f"started with TWAP_NAMESPACE={settings.namespace})",
            )
        )
    elif stats.consumers == 0:
        checks.append(
            Check(
                "worker", False, f"no worker is consuming {stats.name} ({stats.messages} waiting)"
            )
        )
    else:
        checks.append(
            Check(
                "worker",
                True,
                f"{stats.consumers} consumer(s) on {stats.name}, {stats.messages} waiting",
            )
        )
    return checks


async def _database(settings: Settings) -> list[Check]:
    from worker.store.access import DatabaseUnavailable

    try:
        async with database(settings) as store:
            switches = await store.reads.switch_details()
    except DatabaseUnavailable as exc:
        return [Check("database", False, str(exc), UNREACHABLE)]
    notes = [
        f"{name.replace('_', ' ')} engaged" for name, s in sorted(switches.items()) if s.engaged
    ]
    return [
        Check("database", True, "database answers" + (f" ({', '.join(notes)})" if notes else ""))
    ]


async def _readyz(settings: Settings) -> list[Check]:
    if not settings.http_port:
        return []
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "") else settings.http_host
    try:
        answer = await http_get(host, settings.http_port, "/readyz", wait=2.0)
    except (OSError, TimeoutError, ValueError, IndexError):
        return []  # nothing (or no HTTP server) answers there: the checks above decide
    if answer.status == 404:
        return []
    where = f"http://{settings.http_host}:{settings.http_port}/readyz"
    if answer.status == 200:
        return [Check("readyz", True, f"{where} answers 200")]
    body = answer.body.decode("utf-8", "replace").strip()[:2000]
    return [Check("readyz", False, f"{where} answers {answer.status}: {not_ready(body)}")]


def not_ready(body: str) -> str:
    """The failing parts when the body is the worker's readiness JSON, else the body itself."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    if not isinstance(parsed, dict) or not isinstance(parsed.get("failing"), list):
        return body
    checks = parsed.get("checks") if isinstance(parsed.get("checks"), dict) else {}
    parts = []
    for part in parsed["failing"]:
        detail = (checks.get(part) or {}).get("detail") if isinstance(checks, dict) else None
        parts.append(f"{part} ({detail})" if detail else str(part))
    return "not ready: " + ", ".join(parts)


async def _health(settings: Settings) -> list[Check]:
    return [*await _rabbit(settings), *await _database(settings), *await _readyz(settings)]


@app.command("health", epilog="Example: twap health && echo ready\n\n" + CODES_HELP)
def health_command(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Exit 0 when RabbitMQ, the database and a consuming worker answer.

    A worker consumes the requests queue (its consumer count is above 0). When a worker serves
    HTTP on TWAP_HTTP_HOST:TWAP_HTTP_PORT, its /readyz must say ready too. Otherwise the first
    reason is printed on one line and the exit code is non-zero.
    """
    settings = load_settings()
    checks = run(settings, lambda: _health(settings))
    failing = [c for c in checks if not c.ok]
    if as_json:
        output.print_json(
            {
                "healthy": not failing,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
            }
        )
        raise typer.Exit(failing[0].code if failing else OK)
    if failing:
        die("unhealthy: " + failing[0].detail, failing[0].code, settings)
    output.say("[green]healthy[/]: " + "; ".join(c.detail for c in checks))
