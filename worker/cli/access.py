"""`twap limits show|set` and `twap grants show|set`: risk limits and who may trade.

Changes go through N.control as `limits.set` / `grants.set` (the worker stores them with an
audit row and publishes `control.limits.changed` / `control.grants.changed`), published as the
AMQP user of TWAP_AMQP_URL, which RabbitMQ vouches for. Shows read the database.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import typer

from twap_schemas.control import GrantsSet, LimitsSet
from twap_schemas.parse import InvalidMessage, parse_control
from worker.cli import output
from worker.cli.app import app
from worker.cli.durations import flag_seconds
from worker.cli.exits import CODES_HELP, FAILED, INVALID, CliError
from worker.cli.runner import amqp, database, load_settings, run
from worker.core.access import Grant, may_operate
from worker.core.risk import DEFAULT_ROW, LIMIT_KEYS, Limits, effective
from worker.messaging.ops import login_of
from worker.settings import Settings

POLL_SECONDS = 0.2
JsonFlag = Annotated[bool, typer.Option("--json", help="machine-readable output")]
Reason = Annotated[str | None, typer.Option(help="why (kept in the audit row and the event)")]
Timeout = Annotated[str, typer.Option(help="how long to wait for the worker")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="return once published")]

limits_app = typer.Typer(help="Pre-trade risk limits, per strategy with a default row '*'.",
                         no_args_is_help=True)
grants_app = typer.Typer(help="Who may trade which strategy (checked when TWAP_AUTHZ=on).",
                         no_args_is_help=True)


async def require_operator(settings: Settings, what: str) -> None:
    """With authorization on, refuse here, with a clear message, what the worker would refuse:
    a control command from a user without the operator role."""
    if settings.authz != "on":
        return
    user = login_of(settings.amqp_url.get_secret_value())
    async with database(settings) as store:
        grant = await store.grant_of(user)
    refusal = may_operate(user, grant, what)
    if refusal is not None:
        raise CliError(f"{refusal} (TWAP_AUTHZ=on); an operator can grant it with "
                       f"`twap grants set {user} --operator`", FAILED)


def _validated(body: dict[str, Any]) -> bytes:
    raw = json.dumps(body, default=str).encode()
    try:
        parse_control(raw)
    except InvalidMessage as exc:
        raise CliError("invalid command: " + "; ".join(f"{e.loc}: {e.msg}" for e in exc.errors),
                       INVALID) from None
    return raw


async def _publish_and_wait(settings: Settings, raw: bytes, kind: str,
                            applied: Any, wait: float | None) -> None:
    await require_operator(settings, kind)
    async with amqp(settings) as link:
        control = link.names.control
        await link.publish(control, raw, type=kind)
    if wait is None:
        output.say(f"{kind} published to {control}")
        return
    deadline = time.monotonic() + wait
    async with database(settings) as store:
        while not await applied(store):
            if time.monotonic() > deadline:
                raise CliError(f"{kind} published to {control}, but no worker applied it within "
                               f"{wait:g} s", FAILED)
            await asyncio.sleep(POLL_SECONDS)


def _limits_json(rows: dict[str, Limits], strategy: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": {k: v.to_json() for k, v in rows.items()}}
    if strategy is not None:
        out["strategy_id"] = strategy
        out["effective"] = effective(rows.get(DEFAULT_ROW), rows.get(strategy)).to_json()
    return out


async def _limits_show(settings: Settings, strategy: str | None, as_json: bool) -> None:
    async with database(settings) as store:
        rows = await store.limit_rows()
    if strategy is not None:
        rows = {k: v for k, v in rows.items() if k in (DEFAULT_ROW, strategy)}
    shown = _limits_json(rows, strategy)
    if as_json:
        output.print_json(shown)
        return
    table = [[name, key, _cell(value)] for name, row in shown["rows"].items()
             for key, value in row.items()]
    output.print_table(["strategy", "limit", "value"], table, title="limit rows")
    if strategy is not None:
        output.print_fields([(k, _cell(shown["effective"].get(k))) for k in LIMIT_KEYS],
                            title=f"limits that apply to {strategy} (unset: not applied)")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(value) or "(none)"
    return str(value)


@limits_app.command("show", epilog="Example: twap limits show alpha_1 --json\n\n" + CODES_HELP)
def limits_show(
    strategy: Annotated[str | None, typer.Argument(help="also show what applies to it")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The limit rows in the database; with STRATEGY, its row, the default row and the limits
    that apply to it (its own value per key, else the default row's)."""
    settings = load_settings()
    run(settings, lambda: _limits_show(settings, strategy, as_json))


def _symbols(value: str | None) -> list[str] | None:
    return None if value is None else [s.strip() for s in value.split(",") if s.strip()]


@limits_app.command("set", epilog=(
    "Example: twap limits set alpha_1 --max-qty 10000 --max-notional 2500000 "
    "--restricted-symbols GME --reason 'desk limits'\n\n" + CODES_HELP))
def limits_set(
    strategy: Annotated[str, typer.Argument(help="the strategy, or '*' for the default row")],
    max_qty: Annotated[int | None, typer.Option(help="shares per parent")] = None,
    max_notional: Annotated[str | None, typer.Option(help="qty x reference price")] = None,
    max_daily_notional: Annotated[str | None, typer.Option(help="per trade date")] = None,
    max_open_parents: Annotated[int | None, typer.Option()] = None,
    max_slices_per_minute: Annotated[int | None, typer.Option()] = None,
    price_collar_bps: Annotated[int | None, typer.Option()] = None,
    restricted_symbols: Annotated[str | None, typer.Option(help="comma-separated")] = None,
    allowed_symbols: Annotated[str | None, typer.Option(help="comma-separated")] = None,
    clear: Annotated[list[str] | None, typer.Option(
        help="remove this limit (repeatable): it no longer applies, or falls back to '*'")] = None,
    reason: Reason = None,
    no_wait: NoWait = False,
    timeout: Timeout = "15s",
) -> None:
    """Change some limits of STRATEGY through the control queue (operator only when
    authorization is on); limits not named keep their value."""
    given: dict[str, Any] = {
        "max_qty": max_qty, "max_notional": max_notional,
        "max_daily_notional": max_daily_notional, "max_open_parents": max_open_parents,
        "max_slices_per_minute": max_slices_per_minute, "price_collar_bps": price_collar_bps,
        "restricted_symbols": _symbols(restricted_symbols),
        "allowed_symbols": _symbols(allowed_symbols),
    }
    changes = {k: v for k, v in given.items() if v is not None}
    for key in clear or []:
        if key.replace("-", "_") not in LIMIT_KEYS:
            raise typer.BadParameter(f"unknown limit {key!r}", param_hint="--clear")
        changes[key.replace("-", "_")] = None
    if not changes:
        raise typer.BadParameter("name at least one limit to set or --clear")
    settings = load_settings()
    body: dict[str, Any] = {"type": "limits.set", "strategy_id": strategy, "limits": changes,
                            "operator": login_of(settings.amqp_url.get_secret_value())[:64]}
    if reason is not None:
        body["reason"] = reason

    async def main() -> None:
        raw = _validated(body)
        command = parse_control(raw)
        assert isinstance(command, LimitsSet)
        async with database(settings) as store:
            expected = (await store.limit_rows()).get(strategy, Limits()).changed(
                command.changes())

        async def applied(store: Any) -> bool:
            return bool((await store.limit_rows()).get(strategy) == expected)

        await _publish_and_wait(settings, raw, "limits.set", applied,
                                None if no_wait else float(flag_seconds(timeout, "--timeout")))
        if not no_wait:
            output.say(f"limits of {strategy}: " + (json.dumps(expected.to_json()) or "{}"))

    run(settings, main)


async def _grants_show(settings: Settings, user: str | None, as_json: bool) -> None:
    async with database(settings) as store:
        grants = await store.all_grants()
    if user is not None:
        grants = [g for g in grants if g.user == user]
    shown = [g.to_json() for g in grants]
    if as_json:
        output.print_json(shown)
        return
    output.print_table(["user", "strategies", "actions", "operator"],
                       [[g["user"], _cell(g["strategies"]), _cell(g["actions"]),
                         "yes" if g["operator"] else "no"] for g in shown], title="grants")


@grants_app.command("show", epilog="Example: twap grants show strat_alpha --json\n\n" + CODES_HELP)
def grants_show(
    user: Annotated[str | None, typer.Argument(help="only this AMQP user")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The grants in the database, by AMQP user."""
    settings = load_settings()
    run(settings, lambda: _grants_show(settings, user, as_json))


@grants_app.command("set", epilog=(
    "Example: twap grants set strat_alpha --strategy alpha_1 --action submit --action cancel "
    "--reason 'new strategy'\n\n" + CODES_HELP))
def grants_set(
    user: Annotated[str, typer.Argument(help="the AMQP user")],
    strategy: Annotated[list[str] | None, typer.Option(help="repeatable")] = None,
    action: Annotated[list[str] | None, typer.Option(
        help="submit, cancel, pause, resume, amend (repeatable)")] = None,
    operator: Annotated[bool, typer.Option("--operator/--no-operator",
                                           help="the operator role")] = False,
    reason: Reason = None,
    no_wait: NoWait = False,
    timeout: Timeout = "15s",
) -> None:
    """Replace USER's grants through the control queue (operator only when authorization is
    on): the strategies and actions given, and the operator role or not."""
    settings = load_settings()
    body: dict[str, Any] = {"type": "grants.set", "user": user, "strategies": strategy or [],
                            "actions": action or [], "operator": operator,
                            "by": login_of(settings.amqp_url.get_secret_value())[:64]}
    if reason is not None:
        body["reason"] = reason

    async def main() -> None:
        raw = _validated(body)
        command = parse_control(raw)
        assert isinstance(command, GrantsSet)
        expected = Grant.of(user, command.strategies, command.actions, command.operator)

        async def applied(store: Any) -> bool:
            return bool(await store.grant_of(user) == expected)

        await _publish_and_wait(settings, raw, "grants.set", applied,
                                None if no_wait else float(flag_seconds(timeout, "--timeout")))
        if not no_wait:
            output.say(f"grants of {user}: " + json.dumps(expected.to_json()))

    run(settings, main)


app.add_typer(limits_app, name="limits")
app.add_typer(grants_app, name="grants")
