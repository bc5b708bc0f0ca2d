"""The `twap` console script: one typer app, one module per group of subcommands."""

from __future__ import annotations

from worker.cli.app import app, main

__all__ = ["app", "main"]
