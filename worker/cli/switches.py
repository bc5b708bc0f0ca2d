"""`twap kill-switch engage|release|status` and `twap breaker trip|reset|status`.

Changes go through N.control (the worker persists them and publishes the control event), or
with --direct straight into the database, for when RabbitMQ is down: the CLI then writes the
state and the control event's outbox row in one transaction, through the same store call the
worker's control handler makes, and a worker's outbox relay publishes the event once it can.
The status is read from the database, where the state lives.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from twap_schemas.parse import InvalidMessage, parse_switch
from worker.cli import output
from worker.cli.access import require_operator
from worker.cli.app import app
from worker.cli.durations import flag_seconds
from worker.cli.exits import CODES_HELP, FAILED, INVALID, CliError
from worker.cli.runner import amqp, database, load_settings, run
from worker.settings import Settings

POLL_SECONDS = 0.2
REASON_HELP = "why (recorded with the state and its event)"
OPERATOR_HELP = "who (default: the current user)"
NO_WAIT_HELP = "return once published, without waiting for the worker to apply it"
DIRECT_HELP = (
    "write the state and its event to the database instead of going through RabbitMQ "
    "(when RabbitMQ is down); the event is published by the worker once RabbitMQ is back"
)

Operator = Annotated[str | None, typer.Option(help=OPERATOR_HELP)]
NoWait = Annotated[bool, typer.Option("--no-wait", help=NO_WAIT_HELP)]
Direct = Annotated[bool, typer.Option("--direct", help=DIRECT_HELP)]
Timeout = Annotated[str, typer.Option(help="how long to wait for the worker")]
DEFAULT_TIMEOUT = "15s"


@dataclass(frozen=True)
class Switch:
    name: str  # as stored: kill_switch | breaker
    command: str  # the CLI group
    on: tuple[str, str]  # (verb, state word): engage / engaged, trip / tripped
    off: tuple[str, str]
    title: str


KILL = Switch(
    "kill_switch", "kill-switch", ("engage", "engaged"), ("release", "released"), "kill switch"
)
BREAKER = Switch("breaker", "breaker", ("trip", "tripped"), ("reset", "reset"), "circuit breaker")


def default_operator() -> str:
    try:
        return getpass.getuser()[:64]
    except Exception:  # no login name in this environment
        return "unknown"


def state_of(switch: Switch, detail: Any) -> dict[str, Any]:
    if detail is None:
        return {
            "name": switch.name,
            "state": switch.on[1],
            "engaged": True,
            "reason": "state missing from the database: counts as engaged (fail closed)",
        }
    return {
        "name": switch.name,
        "state": switch.on[1] if detail.engaged else switch.off[1],
        "engaged": detail.engaged,
        "reason": detail.reason,
        "operator": detail.operator,
        "automatic": detail.automatic,
        "updated_at": detail.updated_at,
        "consecutive_failures": detail.consecutive_failures,
    }


async def _status(settings: Settings, switch: Switch, as_json: bool) -> None:
    async with database(settings) as store:
        state = state_of(switch, (await store.reads.switch_details()).get(switch.name))
    if as_json:
        output.print_json(state)
        return
    fields: list[tuple[str, Any]] = [
        (key.replace("_", " "), state.get(key))
        for key in ("state", "reason", "operator", "automatic", "updated_at")
    ]
    if switch is BREAKER:
        fields.append(("consecutive failures", state.get("consecutive_failures")))
    output.print_fields(fields, title=switch.title)


def _command(switch: Switch, engage: bool, reason: str | None, operator: str) -> bytes:
    """The control command as the worker would receive it, checked by the worker's parser."""
    verb = (switch.on if engage else switch.off)[0]
    body: dict[str, Any] = {"type": f"{switch.name}.{verb}", "operator": operator}
    if reason is not None:
        body["reason"] = reason
    raw = json.dumps(body).encode()
    try:
        parse_switch(raw)
    except InvalidMessage as exc:
        raise CliError(
            "invalid command: " + "; ".join(f"--{e.loc}: {e.msg}" for e in exc.errors), INVALID
        ) from None
    return raw


async def _change_direct(
    settings: Settings, switch: Switch, engage: bool, reason: str | None, operator: str
) -> int:
    """Write the state and its event in one transaction; RabbitMQ is not touched."""
    verb, word = switch.on if engage else switch.off
    command = parse_switch(_command(switch, engage, reason, operator))
    await require_operator(settings, f"{switch.name}.{verb}")
    async with database(settings) as store:
        changed = await store.set_switch(
            switch.name, engage, datetime.now(UTC), reason=command.reason,
            operator=command.operator, automatic=False,
        )
    if not changed:
        output.say(f"{switch.title} was already {word}: nothing written")
        return 0
    style = "bold red" if engage else "green"
    text = f"{switch.title} [{style}]{word}[/] in the database"
    if reason:
        text += f": {reason}"
    effect = "is blocked" if engage else "passes this switch again"
    output.say(
        f"{text} (by {operator}). Every slice checked from now on {effect}. The "
        f"control.{switch.name}.{word} event waits in the outbox until a worker publishes it."
    )
    return 0


async def _change(
    settings: Settings,
    switch: Switch,
    engage: bool,
    reason: str | None,
    operator: str,
    wait: float | None,
) -> int:
    verb, word = switch.on if engage else switch.off
    raw = _command(switch, engage, reason, operator)
    await require_operator(settings, f"{switch.name}.{verb}")
    async with amqp(settings) as link:
        control = link.names.control
        consumers = (await link.queue_stats(control)).consumers
        await link.publish(control, raw, type=f"{switch.name}.{verb}")
    if wait is None:
        output.say(f"{switch.title} {verb} published to {control}")
        return 0
    deadline = time.monotonic() + wait
    async with database(settings) as store:
        while True:
            detail = (await store.reads.switch_details()).get(switch.name)
            if detail is not None and detail.engaged == engage:
                break
            if time.monotonic() > deadline:
                hint = (
                    " (no worker is consuming it; it applies when one starts)"
                    if consumers == 0
                    else ""
                )
                raise CliError(
                    f"{switch.title} {verb} published to {control}, but no worker "
                    f"applied it within {wait:g} s{hint}",
                    FAILED,
                )
            await asyncio.sleep(POLL_SECONDS)
    style = "bold red" if engage else "green"
    text = f"{switch.title} [{style}]{word}[/]"
    if detail.reason:
        text += f": {detail.reason}"
    output.say(text + (f" (by {detail.operator})" if detail.operator else ""))
    return 0


def _wait(no_wait: bool, timeout: str) -> float | None:
    return None if no_wait else float(flag_seconds(timeout, "--timeout"))


def _apply(
    switch: Switch,
    engage: bool,
    reason: str | None,
    operator: str | None,
    no_wait: bool,
    timeout: str,
    direct: bool = False,
) -> None:
    """The body of every on/off command: publish the change and (unless --no-wait) wait for it,
    or with --direct write it to the database. `_wait` runs inside the coroutine factory, so a
    bad --timeout goes through `run`."""
    settings = load_settings()
    if direct:
        who = operator or default_operator()
        run(settings, lambda: _change_direct(settings, switch, engage, reason, who))
        return
    run(
        settings,
        lambda: _change(
            settings,
            switch,
            engage,
            reason,
            operator or default_operator(),
            _wait(no_wait, timeout),
        ),
    )


def build_group(switch: Switch, help_text: str, examples: tuple[str, str]) -> typer.Typer:
    group = typer.Typer(help=help_text, no_args_is_help=True)
    on_verb, off_verb = switch.on[0], switch.off[0]

    @group.command(
        on_verb,
        epilog=f"Example: {examples[0]}\n\n" + CODES_HELP,
        help=f"{on_verb.capitalize()} the {switch.title} through the control queue "
        "and wait until the worker has stored it (--direct: in the database, without RabbitMQ).",
    )
    def on(
        reason: Annotated[str, typer.Option(help=REASON_HELP)],
        operator: Operator = None,
        no_wait: NoWait = False,
        timeout: Timeout = DEFAULT_TIMEOUT,
        direct: Direct = False,
    ) -> None:
        _apply(switch, True, reason, operator, no_wait, timeout, direct)

    @group.command(
        off_verb,
        epilog=f"Example: {examples[1]}\n\n" + CODES_HELP,
        help=f"{off_verb.capitalize()} the {switch.title} through the control queue "
        "and wait until the worker has stored it (--direct: in the database, without RabbitMQ).",
    )
    def off(
        reason: Annotated[str | None, typer.Option(help=REASON_HELP)] = None,
        operator: Operator = None,
        no_wait: NoWait = False,
        timeout: Timeout = DEFAULT_TIMEOUT,
        direct: Direct = False,
    ) -> None:
        _apply(switch, False, reason, operator, no_wait, timeout, direct)

    @group.command(
        "status",
        epilog=f"Example: twap {switch.command} status --json\n\n" + CODES_HELP,
        help=f"The {switch.title} as stored in the database.",
    )
    def status(
        as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    ) -> None:
        settings = load_settings()
        run(settings, lambda: _status(settings, switch, as_json))

    return group


app.add_typer(
    build_group(
        KILL,
        "The kill switch: while engaged, no slice goes to the broker (each is blocked).",
        (
            "twap kill-switch engage --reason 'exchange outage'",
            "twap kill-switch release --reason 'exchange back'",
        ),
    ),
    name="kill-switch",
)
app.add_typer(
    build_group(
        BREAKER,
        "The circuit breaker: trips by itself after consecutive slice failures; while "
        "tripped, no slice goes to the broker.",
        ("twap breaker trip --reason 'broker rejecting orders'", "twap breaker reset"),
    ),
    name="breaker",
)
