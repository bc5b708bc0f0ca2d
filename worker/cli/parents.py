"""`twap status` and `twap list`: parents and their slices, read from the database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer

from twap_schemas.common import SliceStatus
from worker.cli import output
from worker.cli.app import app
from worker.cli.durations import flag_since
from worker.cli.exits import CODES_HELP, NOT_FOUND, CliError
from worker.cli.progress import SENT
from worker.cli.runner import database, load_settings, run
from worker.cli.watching import complete_parent_id
from worker.core.fills import average
from worker.core.records import ParentRecord, SliceRecord
from worker.core.states import TERMINAL
from worker.settings import Settings


def _price(parent: ParentRecord) -> str:
    parts = [parent.order_type.value]
    if parent.limit_price is not None:
        parts.append(f"limit {parent.limit_price}")
    if parent.stop_price is not None:
        parts.append(f"stop {parent.stop_price}")
    return ", ".join(parts)


def progress_of(tallies: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Slices done (terminal) and shares sent (the order reached the broker: working there,
    filled or closed there), from (count, qty) per status."""
    done = sum(count for status, (count, _) in tallies.items() if SliceStatus(status) in TERMINAL)
    sent = sum(qty for status, (_, qty) in tallies.items() if SliceStatus(status) in SENT)
    return {"done_slices": done, "sent_qty": sent}


async def _status(settings: Settings, parent_id: str, as_json: bool) -> None:
    async with database(settings) as store:
        parent = await store.get_parent(parent_id)
        if parent is None:
            raise CliError(f"unknown parent {parent_id!r}", NOT_FOUND)
        records = await store.get_slices(parent_id)
        notes = await store.reads.parent_notes(parent_id)
    tallies: dict[str, tuple[int, int]] = {}
    for record in records:
        count, qty = tallies.get(record.status.value, (0, 0))
        tallies[record.status.value] = (count + 1, qty + record.qty)
    progress = progress_of(tallies)
    if as_json:
        output.print_json(
            {
                "parent": parent,
                "cancel_reason": notes and notes.cancel_reason,
                "updated_at": notes and notes.updated_at,
                **progress,
                "avg_fill_price": average(parent.notional, parent.filled_qty),
                "slices": records,
            }
        )
        return
    fields: list[tuple[str, Any]] = [
        ("status", parent.status.value),
        ("strategy", parent.strategy_id),
        (
            "order",
            f"{parent.side.value} {parent.qty} {parent.symbol}, {_price(parent)}, "
            f"{parent.time_in_force.value}",
        ),
        (
            "plan",
            f"{parent.total_slices} slices every {parent.interval_seconds} s over "
            f"{parent.duration_seconds} s, {parent.distribution.value}",
        ),
        ("start", parent.start_at),
        ("trade date", parent.trade_date.isoformat()),
        (
            "progress",
            f"{progress['done_slices']}/{parent.total_slices} slices done, "
            f"{progress['sent_qty']}/{parent.qty} shares sent",
        ),
        (
            "filled",
            f"{parent.filled_qty}/{parent.qty} shares, avg price "
            f"{_avg(parent.notional, parent.filled_qty)}, {parent.working_qty} working"
            + (f", outcome {parent.outcome.value}" if parent.outcome is not None else ""),
        ),
        ("submitted by", parent.submitted_by),
    ]
    if notes is not None and notes.cancel_reason:
        fields.append(("cancel reason", notes.cancel_reason))
    output.print_fields(fields, title=f"parent {parent.parent_order_id}")
    output.print_table(
        ["#", "qty", "due", "status", "filled", "avg price", "broker order id", "attempts",
         "reason"],
        [_slice_row(r) for r in records],
    )


def _avg(notional: Decimal, qty: int) -> str:
    """The average fill price, trailing zeros dropped; "-" when nothing filled."""
    avg = average(notional, qty)
    return "-" if avg is None else format(avg.normalize(), "f")


def _slice_row(r: SliceRecord) -> list[Any]:
    return [
        r.slice_num,
        r.qty,
        r.scheduled_time,
        r.status.value,
        r.filled_qty,
        _avg(r.fill_notional, r.filled_qty),
        r.broker_order_id,
        r.attempts,
        r.reason,
    ]


@app.command(
    "status",
    epilog="Example: twap status 3f2a9c0d41b7e8a2c6d5f013 --json | "
    "jq '.slices[] | select(.status != \"filled\")'\n\n" + CODES_HELP,
)
def status_command(
    parent_id: Annotated[
        str, typer.Argument(help="the parent order id", autocompletion=complete_parent_id)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """A parent and a table of its slices.

    The parent's filled qty, average fill price and outcome; each slice: number, qty (as sent),
    due time, status, filled qty, average fill price, broker order id, attempts, reason.
    """
    settings = load_settings()
    run(settings, lambda: _status(settings, parent_id, as_json))


async def _list(
    settings: Settings,
    active: bool,
    strategy: str | None,
    symbol: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    after = flag_since(since, "--since", datetime.now(UTC)) if since else None
    async with database(settings) as store:
        found = await store.reads.list_parents(
            active=active, strategy=strategy, symbol=symbol, since=after, limit=limit
        )
    if as_json:
        output.print_json(
            [{**output.jsonable(p), **progress_of(t), "by_status": t} for p, t in found]
        )
        return
    rows = []
    for parent, tallies in found:
        progress = progress_of(tallies)
        rows.append(
            [
                parent.parent_order_id,
                parent.strategy_id,
                parent.symbol,
                parent.side.value,
                parent.status.value,
                f"{progress['done_slices']}/{parent.total_slices}",
                f"{progress['sent_qty']}/{parent.qty}",
                f"{parent.filled_qty}/{parent.qty}",
                parent.created_at,
            ]
        )
    if not rows:
        output.say("no parents match")
        return
    output.print_table(
        ["parent", "strategy", "symbol", "side", "status", "slices done", "qty sent",
         "qty filled", "created"],
        rows,
    )


@app.command(
    "list",
    epilog="Examples:\n\n  twap list --active\n\n  twap list --strategy "
    "alpha_1 --symbol AAPL --since 2h --limit 20 --json\n\n" + CODES_HELP,
)
def list_command(
    active: Annotated[bool, typer.Option("--active", help="only parents still running")] = False,
    strategy: Annotated[str | None, typer.Option(help="only this strategy_id")] = None,
    symbol: Annotated[str | None, typer.Option(help="only this symbol")] = None,
    since: Annotated[
        str | None, typer.Option(help="created since: 2h, 2024-05-01 or an RFC 3339 time")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="newest first, at most this many")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Parents, newest first, with slices done / total and qty sent / total."""
    settings = load_settings()
    run(settings, lambda: _list(settings, active, strategy, symbol, since, limit, as_json))
