"""The `twap` console script: one typer app, one module per group of subcommands."""

from __future__ import annotations

import sys

from worker.cli.app import app


def main() -> None:
    # Operator subcommands live in their own modules and register themselves on `app`; they
    # are imported here, above the app, so that no module of the package imports its caller.
    from worker.cli import commands  # noqa: F401

    app(prog_name="twap")
    sys.exit(0)


__all__ = ["app", "main"]
