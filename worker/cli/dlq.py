"""`twap dlq list|show|replay|purge`: dead letters with their reasons, replayed or purged."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from worker.cli import output
from worker.cli.app import app
from worker.cli.exits import CODES_HELP, FAILED, NOT_FOUND, UNREACHABLE, CliError
from worker.cli.runner import amqp, load_settings, run
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.messaging.deadletters import DeadLetter, DeadLetterQueue, ReplayOutcome

dlq = typer.Typer(
    help="Dead letters: requests the worker rejected (with its reason) and poison "
    "messages RabbitMQ dead-lettered (x-death).",
    no_args_is_help=True,
)
app.add_typer(dlq, name="dlq")

SELECTORS_HELP = "positions (1-based, as `twap dlq list` shows) or message ids"


def _summary(letter: DeadLetter) -> dict[str, Any]:
    try:
        body = json.loads(letter.body)
    except ValueError:
        body = None
    what = body if isinstance(body, dict) else {}
    return {
        "position": letter.position,
        "message_id": letter.message_id,
        "type": what.get("type"),
        "strategy_id": what.get("strategy_id"),
        "symbol": what.get("symbol"),
        "reason": letter.reason,
        "detail": letter.detail,
        "by": letter.dead_lettered_by,
        "source_queue": letter.source_queue,
        "died_at": letter.died_at,
    }


def _queue(link: Any) -> DeadLetterQueue:
    from worker.messaging.deadletters import DeadLetterQueue

    return DeadLetterQueue(link)


async def _list(settings: Settings, as_json: bool) -> None:
    async with amqp(settings) as link:
        letters = await _queue(link).browse()
    rows = [_summary(letter) for letter in letters]
    if as_json:
        output.print_json(rows)
        return
    if not rows:
        output.say(f"{link.names.dlq} is empty")
        return
    output.print_table(
        ["#", "message id", "type", "strategy", "symbol", "reason", "by", "detail"],
        [
            [
                r["position"],
                r["message_id"],
                r["type"],
                r["strategy_id"],
                r["symbol"],
                r["reason"],
                r["by"],
                r["detail"],
            ]
            for r in rows
        ],
        title=f"{link.names.dlq}: {len(rows)} dead letter(s)",
    )


@dlq.command(
    "list",
    epilog="Example: twap dlq list --json | jq '.[] | {position, reason, detail}'\n\n" + CODES_HELP,
)
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Every dead letter, in queue order, with why it died. Nothing is removed."""
    settings = load_settings()
    run(settings, lambda: _list(settings, as_json))


async def _show(settings: Settings, selector: str, as_json: bool) -> None:
    from worker.messaging.deadletters import SelectionError, select

    async with amqp(settings) as link:
        letters = await _queue(link).browse()
    try:
        (letter,) = select(letters, [selector], every=False)[:1]
    except (SelectionError, ValueError):
        raise CliError(
            f"no dead letter at position or with message_id {selector!r}", NOT_FOUND
        ) from None
    text = letter.body.decode("utf-8", "replace")
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    if as_json:
        output.print_json(
            {
                **_summary(letter),
                "properties": letter.properties,
                "headers": letter.headers,
                "body": parsed if parsed else text,
            }
        )
        return
    fields = [(k, v) for k, v in _summary(letter).items()]
    fields += [
        (f"property {k}", v) for k, v in letter.properties.items() if k not in ("message_id",)
    ]
    output.print_fields(fields, title=f"dead letter {letter.position}")
    typer.echo(json.dumps(parsed, indent=2) if parsed is not None else text)


@dlq.command("show", epilog="Example: twap dlq show 1\n\n" + CODES_HELP)
def show_command(
    selector: Annotated[str, typer.Argument(help="position (1-based) or message id")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """One dead letter in full: reason, properties, headers and body. Nothing is removed."""
    settings = load_settings()
    run(settings, lambda: _show(settings, selector, as_json))


def _outcome_row(o: ReplayOutcome, dry_run: bool) -> list[Any]:
    state = "would replay" if dry_run else ("replayed" if o.replayed else "kept")
    return [o.letter.position, o.letter.message_id, o.letter.reason, o.target, state, o.error]


async def _replay(
    settings: Settings, selectors: list[str], every: bool, dry_run: bool, as_json: bool
) -> int:
    from worker.messaging.deadletters import SelectionError

    async with amqp(settings) as link:
        try:
            outcomes = await _queue(link).replay(selectors, every, dry_run=dry_run)
        except SelectionError as exc:
            raise CliError(str(exc), NOT_FOUND) from None
    failed = [o for o in outcomes if not o.replayed and not dry_run]
    if as_json:
        output.print_json(
            [
                {
                    "position": o.letter.position,
                    "message_id": o.letter.message_id,
                    "target": o.target,
                    "replayed": o.replayed,
                    "error": o.error,
                }
                for o in outcomes
            ]
        )
    elif outcomes:
        output.print_table(
            ["#", "message id", "reason", "to", "result", "error"],
            [_outcome_row(o, dry_run) for o in outcomes],
        )
    else:
        output.say("nothing to replay")
    if failed:
        raise CliError(f"{len(failed)} dead letter(s) not replayed; they stay in the DLQ", FAILED)
    return 0


@dlq.command(
    "replay",
    epilog="Examples:\n\n  twap dlq replay 1 3\n\n  twap dlq replay "
    "--all --dry-run\n\n" + CODES_HELP,
)
def replay_command(
    selectors: Annotated[list[str] | None, typer.Argument(help=SELECTORS_HELP)] = None,
    every: Annotated[bool, typer.Option("--all", help="replay every dead letter")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what would be replayed; nothing moves")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Republish dead letters to the queue they died in.

    Body and properties go as they were, minus the death headers. Each one leaves the DLQ only
    after RabbitMQ confirmed its republish; one that could not be republished stays.
    """
    settings = load_settings()
    run(settings, lambda: _replay(settings, selectors or [], every, dry_run, as_json))


async def _purge(settings: Settings, yes: bool) -> None:
    async with amqp(settings) as link:
        queue = link.names.dlq
        stats = await link.queue_stats(queue)
        if not stats.exists:
            raise CliError(
                f"{queue} does not exist (has a worker ever started with "
                f"TWAP_NAMESPACE={settings.namespace}?)",
                UNREACHABLE,
            )
        depth = stats.messages
        if depth == 0:
            output.say(f"{queue} is empty")
            return
        if not yes and not typer.confirm(
            f"Delete {depth} dead letter(s) from {queue} for good?", default=False
        ):
            raise CliError("purge canceled; nothing was deleted", FAILED)
        purged = await _queue(link).purge()
    output.say(f"purged {purged} dead letter(s) from {queue}")


@dlq.command("purge", epilog="Example: twap dlq purge --yes\n\n" + CODES_HELP)
def purge_command(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete every dead letter, after confirmation (or --yes)."""
    settings = load_settings()
    run(settings, lambda: _purge(settings, yes))
