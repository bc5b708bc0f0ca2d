"""Rendering for the operator commands: rich tables on a terminal, aligned plain text
otherwise, JSON with --json."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

STYLES = {
    "submitted": "cyan",
    "filled": "green",
    "closed": "yellow",
    "completed": "green",
    "active": "cyan",
    "scheduled": "cyan",
    "submitting": "cyan",
    "canceled": "yellow",
    "released": "green",
    "reset": "green",
    "engaged": "bold red",
    "tripped": "bold red",
    "blocked_kill_switch": "red",
    "blocked_circuit_breaker": "red",
    "blocked_risk": "red",
    "rejected": "red",
    "failed": "red",
    "expired": "red",
}


FREE_TEXT = frozenset({"reason", "detail", "error"})
FREE_TEXT_WIDTH = 48


def interactive() -> bool:
    return sys.stdout.isatty()


def console() -> Console:
    return Console(file=sys.stdout, highlight=False)


def jsonable(value: Any) -> Any:
    """Plain JSON types from records, enums, times, prices and bytes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def print_json(value: Any, *, compact: bool = False) -> None:
    text = json.dumps(jsonable(value), indent=None if compact else 2, sort_keys=False)
    typer.echo(text)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return str(value)


def styled(text: str) -> str:
    style = STYLES.get(text)
    return f"[{style}]{text}[/]" if style and interactive() else text


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    texts = [[cell(v) for v in row] for row in rows]
    if interactive():
        table = Table(
            title=title,
            title_justify="left",
            header_style="bold",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        for column in columns:
            if column in FREE_TEXT:
                table.add_column(column, max_width=FREE_TEXT_WIDTH)
            else:
                table.add_column(column, no_wrap=True)
        for row in texts:
            table.add_row(*(styled(v) for v in row))
        out = console()
        # Ids and times are never cut: a table wider than the terminal is printed whole and
        # the terminal wraps its lines.
        width = Measurement.get(out, out.options.update_width(10_000), table).maximum
        if width > out.width:
            out = Console(file=sys.stdout, highlight=False, width=width)
        out.print(table)
        return
    if title:
        typer.echo(title)
    widths = [max([len(c)] + [len(r[i]) for r in texts]) for i, c in enumerate(columns)]
    for row in [list(columns), *texts]:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def print_fields(pairs: Sequence[tuple[str, Any]], title: str | None = None) -> None:
    """`key: value` lines (a two-column grid on a terminal)."""
    if interactive():
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        for key, value in pairs:
            grid.add_row(key, styled(cell(value)))
        out = console()
        if title:
            out.print(f"[bold]{title}[/]")
        out.print(grid)
        return
    if title:
        typer.echo(title)
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        typer.echo(f"{(key + ':').ljust(width + 1)} {cell(value)}")


def say(message: str) -> None:
    """One line of output; markup only on a terminal."""
    if interactive():
        console().print(message)
    else:
        typer.echo(Console(markup=True).render_str(message).plain)
