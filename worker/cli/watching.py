"""`twap watch` and `twap events`: follow the events exchange live."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from worker.cli import output
from worker.cli.app import app
from worker.cli.durations import flag_seconds
from worker.cli.exits import CODES_HELP, FAILED, NOT_FOUND, CliError
from worker.cli.progress import Progress
from worker.cli.runner import amqp, database, load_settings, run
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.messaging.ops import EventStream
    from worker.store.repository import Store

DB_POLL_SECONDS = 5.0


class Display:
    """Progress lines (plain), a live bar (terminal) or one JSON snapshot per change."""

    def __init__(self, progress: Progress, as_json: bool) -> None:
        self.progress = progress
        self.as_json = as_json
        self.bar: Any = None

    def __enter__(self) -> Display:
        p = self.progress
        if self.as_json:
            output.print_json(p.snapshot(), compact=True)
        elif output.interactive():
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn("{task.description:>7}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=output.console(),
            )
            self.slices = self.bar.add_task("slices", total=p.total_slices)
            self.shares = self.bar.add_task("sent", total=p.total_qty)
            self.filled = self.bar.add_task("filled", total=p.total_qty)
            self.bar.start()
            self.bar.console.print(f"[bold]{p.parent_order_id}[/] {p.label}")
            self._sync()
        else:
            typer.echo(
                f"{p.parent_order_id} {p.label}: {p.done_slices}/{p.total_slices} "
                f"slices done, {p.sent_qty}/{p.total_qty} shares sent, "
                f"{p.filled_qty}/{p.total_qty} filled"
            )
        return self

    def _sync(self) -> None:
        self.bar.update(self.slices, completed=self.progress.done_slices)
        self.bar.update(self.shares, completed=self.progress.sent_qty)
        self.bar.update(self.filled, completed=self.progress.filled_qty)

    def show(self, lines: list[str]) -> None:
        if not lines:
            return
        if self.as_json:
            output.print_json(self.progress.snapshot(), compact=True)
        elif self.bar is not None:
            for line in lines:
                self.bar.console.print(line, markup=False)
            self._sync()
        else:
            for line in lines:
                typer.echo(line)

    def __exit__(self, *_: object) -> None:
        if self.bar is not None:
            self.bar.stop()


async def follow(
    store: Store, stream: EventStream, parent_id: str, *, as_json: bool, give_up_after: float | None
) -> int:
    """Read the parent's state (after the stream was bound: nothing is missed), then apply
    events until it is terminal; the database is re-read now and then in case one was lost."""
    parent = await store.get_parent(parent_id)
    if parent is None:
        raise CliError(f"unknown parent {parent_id!r}", NOT_FOUND)
    progress = Progress.start(parent, await store.get_slices(parent_id))
    started = last_read = time.monotonic()
    with Display(progress, as_json) as display:
        if progress.finished:
            display.show([progress.summary()])
        while not progress.finished:
            if give_up_after is not None and time.monotonic() - started > give_up_after:
                raise CliError(
                    f"{parent_id} still active after {give_up_after:g} s ({progress.summary()})",
                    FAILED,
                )
            event = await stream.next(within=DB_POLL_SECONDS)
            if event is not None:
                display.show(progress.apply(event))
            if event is None or time.monotonic() - last_read > DB_POLL_SECONDS:
                last_read = time.monotonic()
                current = await store.get_parent(parent_id)
                if current is not None:
                    display.show(progress.refresh(current, await store.get_slices(parent_id)))
    return progress.exit_code


def strategy_keys(strategy: str) -> list[str]:
    """Binding keys for a strategy's parent and slice events (`{event_type}.{strategy}`)."""
    return [f"parent.*.{strategy}", f"slice.*.{strategy}"]


def seconds_or_none(value: str | None, flag: str) -> float | None:
    return None if value is None else float(flag_seconds(value, flag))


async def _watch(
    settings: Settings, parent_id: str, as_json: bool, give_up_after: float | None
) -> int:
    async with database(settings) as store:
        parent = await store.get_parent(parent_id)
        if parent is None:
            raise CliError(f"unknown parent {parent_id!r}", NOT_FOUND)
        async with amqp(settings) as link, link.subscribe(strategy_keys(parent.strategy_id)) as s:
            return await follow(store, s, parent_id, as_json=as_json, give_up_after=give_up_after)


def complete_parent_id(incomplete: str) -> list[str]:
    """Shell completion: recent parent ids from the database (nothing when it is away)."""
    import asyncio

    async def ids() -> list[str]:
        async with database(Settings()) as store:
            return await store.reads.parent_ids(incomplete, 20)

    try:
        return asyncio.run(asyncio.wait_for(ids(), 3))
    except Exception:
        return []


@app.command("watch", epilog="Example: twap watch 3f2a9c0d41b7e8a2c6d5f013\n\n" + CODES_HELP)
def watch_command(
    parent_id: Annotated[
        str, typer.Argument(help="the parent order id", autocompletion=complete_parent_id)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON snapshot per change")] = False,
    timeout: Annotated[str | None, typer.Option(help="give up after this long, e.g. 30m")] = None,
) -> None:
    """Follow a parent live, with a progress bar, until it is terminal.

    Exit 0 when it completed with every slice submitted; 1 when it was canceled or slices
    failed, were rejected, expired or blocked.
    """
    settings = load_settings()
    code = run(
        settings,
        lambda: _watch(settings, parent_id, as_json, seconds_or_none(timeout, "--timeout")),
    )
    raise typer.Exit(code)


def event_line(event: dict[str, Any]) -> str:
    parts = [str(event.get("occurred_at", ""))[11:19], str(event.get("event_type", "?"))]
    for key in ("strategy_id", "parent_order_id", "symbol", "side"):
        if event.get(key):
            parts.append(str(event[key]))
    if "slice_num" in event:
        parts.append(f"slice={event['slice_num']} qty={event.get('qty')}")
    for key in ("broker_order_id", "reason", "operator", "total_slices", "submitted_qty"):
        if event.get(key) is not None:
            parts.append(f"{key}={event[key]}")
    if event.get("errors"):
        parts.append(
            "errors=" + "; ".join(f"{e.get('loc')}: {e.get('msg')}" for e in event["errors"])
        )
    return " ".join(parts)


async def _events(
    settings: Settings,
    pattern: str,
    strategy: str | None,
    parent: str | None,
    as_json: bool,
    count: int | None,
    stop_after: float | None,
) -> None:
    key = f"#.{strategy}" if strategy and pattern == "#" else pattern
    deadline = None if stop_after is None else time.monotonic() + stop_after
    shown = 0
    async with amqp(settings) as link, link.subscribe([key]) as stream:
        typer.echo(f"listening on {link.names.events} ({key})", err=True)
        while count is None or shown < count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            event = await stream.next(within=left)
            if event is None:
                return
            if strategy and event.get("strategy_id") != strategy:
                continue
            if parent and event.get("parent_order_id") != parent:
                continue
            shown += 1
            if as_json:
                output.print_json(event, compact=True)
            else:
                typer.echo(event_line(event))


@app.command(
    "events",
    epilog="Examples:\n\n  twap events --pattern 'slice.#' --strategy alpha_1"
    "\n\n  twap events --json --count 10 | jq .event_type\n\n" + CODES_HELP,
)
def events_command(
    pattern: Annotated[
        str, typer.Option(help="topic binding key: 'slice.#', 'parent.completed.*', 'control.#'")
    ] = "#",
    strategy: Annotated[str | None, typer.Option(help="only this strategy's events")] = None,
    parent: Annotated[str | None, typer.Option(help="only this parent's events")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    count: Annotated[int | None, typer.Option(min=1, help="stop after this many events")] = None,
    timeout: Annotated[str | None, typer.Option(help="stop after this long, e.g. 10m")] = None,
) -> None:
    """Tail the events exchange live, one line per event (or JSON), until Ctrl-C."""
    settings = load_settings()
    run(
        settings,
        lambda: _events(
            settings,
            pattern,
            strategy,
            parent,
            as_json,
            count,
            seconds_or_none(timeout, "--timeout"),
        ),
    )
