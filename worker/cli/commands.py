"""Operator subcommands register here (imported by `twap` at start)."""

from __future__ import annotations

import inspect

import typer

from worker.cli import access, dlq, health, orders, parents, queues, switches, watching
from worker.cli.app import app

__all__ = ["access", "dlq", "health", "orders", "parents", "queues", "switches", "watching"]


def unwrap_help(group: typer.Typer) -> None:
    """Docstrings are wrapped for the source; --help re-wraps each paragraph to the terminal."""
    for info in group.registered_commands:
        doc = info.callback.__doc__ if info.callback is not None else None
        if doc and info.help is None:
            paragraphs = inspect.cleandoc(doc).split("\n\n")
            info.callback.__doc__ = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            unwrap_help(sub.typer_instance)


unwrap_help(app)
