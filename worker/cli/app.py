"""`twap` and its service subcommands: `twap worker`, `twap migrate`."""

from __future__ import annotations

import asyncio
import signal

import typer

from worker.settings import Settings, mask_url

app = typer.Typer(
    name="twap",
    help="TWAP execution worker and its operator tools. Settings come from the environment "
    "(see `twap worker --help`).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def settings_help() -> str:
    """The settings table for --help, from the one Settings class (no values, no secrets)."""
    lines = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        env = " / ".join(map(str, choices)) if choices else f"TWAP_{name.upper()}"
        default = "" if field.is_required() else field.default
        if hasattr(default, "get_secret_value"):
            default = mask_url(default.get_secret_value())
        desc = field.description or ""
        lines.append(f"{env} (default: {default}) {desc}".rstrip())
    return "\n\n".join(lines)


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"twap: {message}", err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:
        fail(f"invalid settings: {exc}".replace("\n", " "))
        raise  # unreachable


@app.command("worker", help="Run the worker until SIGTERM/SIGINT, then drain.\n\n"
             "Example: TWAP_NAMESPACE=twap twap worker\n\nSettings:\n\n" + settings_help())
def worker_command() -> None:
    from worker import logs
    from worker.app import SchemaNotReady, Worker
    from worker.brokers.factory import build_broker
    from worker.store.leadership import AlreadyRunning

    settings = load_settings()
    logs.configure(settings.log_level, settings.log_json)
    try:
        broker = build_broker(settings)
    except Exception as exc:  # missing credentials and the like: one line, no secrets
        fail(str(exc))
    worker = Worker(settings, broker=broker)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    try:
        asyncio.run(main())
    except (SchemaNotReady, AlreadyRunning) as exc:
        fail(str(exc))


@app.command("migrate", help="Upgrade the database schema to the latest revision.\n\n"
             "Example: TWAP_DATABASE_URL=postgresql+asyncpg://user@host/db twap migrate")
def migrate_command(
    revision: str = typer.Argument("head", help="target revision"),
) -> None:
    from worker.store.migrations import upgrade

    settings = load_settings()
    url = settings.database_url.get_secret_value()
    try:
        upgrade(url, revision)
    except Exception as exc:
        fail(f"migration failed on {mask_url(url)}: {exc}")
    typer.echo(f"database {mask_url(url)} is at {revision}")
