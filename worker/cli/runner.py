"""Run one operator command: its services, and every failure as one line and an exit code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit

import typer

from worker.cli.app import load_settings
from worker.cli.exits import FAILED, UNREACHABLE, CliError
from worker.settings import Settings, mask_url

if TYPE_CHECKING:
    from worker.messaging.ops import OpsLink
    from worker.messaging.topology import Names
    from worker.store.repository import Store

T = TypeVar("T")

__all__ = ["amqp", "database", "die", "load_settings", "names", "run"]


def _secrets(settings: Settings | None) -> list[str]:
    if settings is None:
        return []
    found = []
    for url in (settings.amqp_url.get_secret_value(), settings.database_url.get_secret_value()):
        password = urlsplit(url).password
        if password:
            found += [password, unquote(password)]
    return found


def die(message: str, code: int = FAILED, settings: Settings | None = None) -> NoReturn:
    """Print `twap: <message>` on stderr, never a password, and exit with `code`."""
    line = " ".join(message.split())
    for secret in _secrets(settings):
        line = line.replace(secret, "***")
    typer.echo(f"twap: {line}", err=True)
    raise typer.Exit(code)


def run(settings: Settings, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run(main()), turning the known failures into one line and an exit code."""
    from worker.messaging.ops import BrokerUnavailable, MissingTopology, quiet_client_logs
    from worker.store.access import DatabaseUnavailable

    quiet_client_logs()
    try:
        return asyncio.run(main())
    except CliError as exc:
        die(exc.message, exc.code, settings)
    except (BrokerUnavailable, MissingTopology, DatabaseUnavailable) as exc:
        die(str(exc), UNREACHABLE, settings)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def names(settings: Settings) -> Names:
    from worker.messaging.topology import Names

    return Names(settings.namespace)


@asynccontextmanager
async def amqp(settings: Settings) -> AsyncIterator[OpsLink]:
    from worker.messaging.ops import connect

    url = settings.amqp_url.get_secret_value()
    async with connect(url, mask_url(url), names(settings)) as link:
        yield link


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Store]:
    from worker.store.access import open_store

    url = settings.database_url.get_secret_value()
    async with open_store(url, mask_url(url)) as store:
        yield store
