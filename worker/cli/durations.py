"""Durations as operators type them: `90`, `90s`, `30m`, `1h30m`, `2h`, `1d`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from worker.cli.exits import INVALID, CliError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_PART = re.compile(r"(\d+)([smhd])")


class BadDuration(ValueError):
    pass


def parse_seconds(text: str) -> int:
    """Whole seconds in `text`; a bare number is seconds. Raises BadDuration."""
    value = text.strip().lower()
    if value.isdigit():
        return int(value)
    parts = _PART.findall(value)
    if not value or "".join(n + u for n, u in parts) != value:
        raise BadDuration(f"{text!r} is not a duration (use e.g. 90s, 30m, 1h30m, or seconds)")
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def flag_seconds(value: str, flag: str) -> int:
    """`parse_seconds` for a command-line flag: a bad value is CliError(INVALID) naming `flag`."""
    try:
        return parse_seconds(value)
    except BadDuration as exc:
        raise CliError(f"{flag}: {exc}", INVALID) from None


def flag_since(value: str, flag: str, now: datetime) -> datetime:
    """`parse_since` for a command-line flag: a bad value is CliError(INVALID) naming `flag`."""
    try:
        return parse_since(value, now)
    except BadDuration as exc:
        raise CliError(f"{flag}: {exc}", INVALID) from None


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a duration back from now (`2h`), a date (`2024-05-01`, UTC midnight) or an
    RFC 3339 timestamp."""
    try:
        return now - timedelta(seconds=parse_seconds(text))
    except BadDuration:
        pass
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadDuration(
            f"{text!r} is neither a duration (2h) nor a date (2024-05-01) nor a timestamp"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
