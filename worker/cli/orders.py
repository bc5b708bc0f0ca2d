"""`twap submit` and `twap cancel` as command-line flags."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from twap_schemas.common import Distribution, OrderType, Side, TimeInForce
from worker.cli.app import app
from worker.cli.durations import flag_seconds
from worker.cli.exits import CODES_HELP
from worker.cli.runner import load_settings, run
from worker.cli.submitting import send, show_reply, validate
from worker.cli.watching import complete_parent_id, seconds_or_none

SUBMIT_EXAMPLE = (
    "Examples:\n\n"
    "  twap submit --strategy alpha_1 --symbol AAPL --side buy --qty 1000 --duration 30m "
    "--interval 60s --watch\n\n"
    "  twap submit -s alpha_1 --symbol MSFT --side sell --qty 500 --duration 1h "
    "--order-type limit --limit-price 410.25 --max-slice-qty 50 -q\n\n" + CODES_HELP
)


@app.command("submit", epilog=SUBMIT_EXAMPLE)
def submit_command(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="strategy_id")],
    symbol: Annotated[str, typer.Option(help="e.g. AAPL, BRK.B, BTC/USD")],
    side: Annotated[Side, typer.Option(help="buy or sell")],
    qty: Annotated[int, typer.Option(help="total shares")],
    duration: Annotated[str, typer.Option(help="how long to spread it: 90s, 30m, 1h30m")],
    interval: Annotated[str | None, typer.Option(help="time between slices (default 60s)")] = None,
    order_type: Annotated[OrderType | None, typer.Option(help="(default market)")] = None,
    limit_price: Annotated[str | None, typer.Option(help="for limit, stop_limit")] = None,
    stop_price: Annotated[str | None, typer.Option(help="for stop, stop_limit")] = None,
    tif: Annotated[
        TimeInForce | None, typer.Option("--tif", help="time in force (default day)")
    ] = None,
    max_slice_qty: Annotated[int | None, typer.Option(help="liquidity cap per slice")] = None,
    distribution: Annotated[
        Distribution | None, typer.Option(help="where the remainder goes (default front_loaded)")
    ] = None,
    start_at: Annotated[
        str | None, typer.Option(help="RFC 3339, e.g. 2024-05-01T14:30:00Z (default now)")
    ] = None,
    trade_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    request_id: Annotated[str | None, typer.Option(help="idempotency key")] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", "-w", help="follow it live until it is terminal (exit code as `twap watch`)"
        ),
    ] = False,
    timeout: Annotated[str, typer.Option(help="how long to wait for the reply")] = "30s",
    as_json: Annotated[bool, typer.Option("--json", help="print the reply as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print the parent id only")] = False,
) -> None:
    """Publish a TWAP request and print the parent id from the worker's reply.

    The request is checked first with the worker's own rules and this environment's limits:
    a broken rule is reported with its flag and nothing is published.
    """
    settings = load_settings()

    def body() -> dict[str, Any]:
        fields: dict[str, Any] = {
            "type": "submit",
            "strategy_id": strategy,
            "symbol": symbol,
            "side": side.value,
            "qty": qty,
            "duration_seconds": flag_seconds(duration, "--duration"),
            "interval_seconds": None if interval is None else flag_seconds(interval, "--interval"),
            "order_type": order_type.value if order_type else None,
            "limit_price": limit_price,
            "stop_price": stop_price,
            "time_in_force": tif.value if tif else None,
            "max_slice_qty": max_slice_qty,
            "distribution": distribution.value if distribution else None,
            "start_at": start_at,
            "trade_date": trade_date,
            "request_id": request_id,
        }
        return {key: value for key, value in fields.items() if value is not None}

    async def main() -> int:
        request = body()
        validate(request, settings)
        wait = float(flag_seconds(timeout, "--timeout"))
        reply, code = await send(
            settings, request, wait, watch_strategy=strategy if watch else None, as_json=as_json
        )
        if not watch:
            show_reply(reply, as_json=as_json, quiet=quiet)
        return code

    raise typer.Exit(run(settings, main))


@app.command(
    "cancel",
    epilog="Example: twap cancel 3f2a9c0d41b7e8a2c6d5f013 --reason 'desk "
    "request' --cancel-working-orders\n\n" + CODES_HELP,
)
def cancel_command(
    parent_id: Annotated[
        str, typer.Argument(help="the parent order id", autocompletion=complete_parent_id)
    ],
    reason: Annotated[
        str | None, typer.Option(help="recorded on the parent and its events")
    ] = None,
    cancel_working_orders: Annotated[
        bool,
        typer.Option(
            "--cancel-working-orders", help="also cancel its orders still open at the broker"
        ),
    ] = False,
    timeout: Annotated[str, typer.Option(help="how long to wait for the reply")] = "30s",
    as_json: Annotated[bool, typer.Option("--json", help="print the reply as JSON")] = False,
) -> None:
    """Cancel every slice of a parent that has not gone out yet."""
    settings = load_settings()

    async def main() -> int:
        request: dict[str, Any] = {"type": "cancel", "parent_order_id": parent_id}
        if reason is not None:
            request["reason"] = reason
        if cancel_working_orders:
            request["cancel_working_orders"] = True
        validate(request, settings)
        wait = seconds_or_none(timeout, "--timeout") or 30.0
        reply, _ = await send(settings, request, wait)
        show_reply(reply, as_json=as_json, quiet=False)
        return 0

    raise typer.Exit(run(settings, main))
