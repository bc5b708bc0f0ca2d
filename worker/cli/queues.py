"""`twap queues`: depth and consumers of every queue of the namespace."""

from __future__ import annotations

from typing import Annotated

import typer

from worker.cli import output
from worker.cli.app import app
from worker.cli.exits import CODES_HELP
from worker.cli.runner import amqp, load_settings, run
from worker.settings import Settings

ROLES = {
    "requests": "submit / cancel",
    "control": "kill switch / breaker",
    "requests.dlq": "dead letters",
}


async def _queues(settings: Settings, as_json: bool) -> None:
    async with amqp(settings) as link:
        stats = [await link.queue_stats(name) for name in link.names.queues]
    if as_json:
        output.print_json(stats)
        return
    prefix = settings.namespace + "."
    output.print_table(
        ["queue", "role", "ready", "consumers"],
        [
            [
                s.name,
                ROLES.get(s.name.removeprefix(prefix), ""),
                s.messages if s.exists else "missing",
                s.consumers if s.exists else "-",
            ]
            for s in stats
        ],
    )


@app.command("queues", epilog="Example: TWAP_NAMESPACE=twap twap queues --json\n\n" + CODES_HELP)
def queues_command(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Ready messages and consumers of every queue of the namespace.

    Read with passive declares: nothing is created. Messages a consumer holds unacknowledged
    are not counted.
    """
    settings = load_settings()
    run(settings, lambda: _queues(settings, as_json))
