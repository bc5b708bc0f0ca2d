"""IN lists in a few fixed lengths.

An `IN (...)` list is rendered with one placeholder per value, so each length is a different SQL
text: a statement of its own in SQLite's per-connection cache of prepared statements and in
asyncpg's, each 10-20 KiB of memory. With lists of any length the caches never settle: a new
length evicts an older statement and prepares another, for as long as the worker runs. A list
padded to the next of IN_SIZES (repeating its last value, which matches no row twice) keeps
each such statement to len(IN_SIZES) texts.

The statements themselves are built once, with an expanding parameter: one built per call with
`.in_(values)` is a reference cycle holding the values (SQLAlchemy's bound parameter memoizes
a set holding itself), which the garbage collector's freeze of its survivors
(observability.gcpause) can keep for good.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

IN_SIZES = (1, 4, 16, 64, 256)
IN_MAX = IN_SIZES[-1]


@dataclass(frozen=True, slots=True)
class InListStatement:
    statement: Any
    parameter: str  # the expanding parameter that takes the list
    matches_nothing: Any  # a value no row holds: the warm-up's list (warmup.py)


# Every statement built by `built_once`, for the warm-up to run at each length.
REGISTERED: list[InListStatement] = []


def built_once(statement: Any, parameter: str, matches_nothing: Any) -> Any:
    """`statement` (taking its list in the expanding `parameter`), registered for the
    start-up warm-up; returned as it is."""
    REGISTERED.append(InListStatement(statement, parameter, matches_nothing))
    return statement


def warm_ups() -> Iterator[tuple[Any, dict[str, Any]]]:
    """Each registered statement with a list of each length of IN_SIZES that matches no row:
    every SQL text these statements can send, once."""
    for entry in REGISTERED:
        for size in IN_SIZES:
            yield entry.statement, {entry.parameter: [entry.matches_nothing] * size}


def padded(values: Sequence[T]) -> list[T]:
    """`values` (1 to IN_MAX of them) at the next length of IN_SIZES, the last one repeated."""
    if not values:
        raise ValueError("an IN list needs at least one value")
    if len(values) > IN_MAX:
        raise ValueError(f"an IN list takes at most {IN_MAX} values, got {len(values)}")
    size = next(s for s in IN_SIZES if s >= len(values))
    return [*values, *([values[-1]] * (size - len(values)))]


def chunks(values: Sequence[T]) -> Iterator[list[T]]:
    """`values` cut into IN lists of at most IN_MAX, each padded; nothing for no values."""
    for start in range(0, len(values), IN_MAX):
        yield padded(values[start : start + IN_MAX])
