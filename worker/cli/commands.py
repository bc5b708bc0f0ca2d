"""Operator subcommands register here (imported by `twap` at start)."""
