"""Conversions between table rows and the core's records, derived from both definitions.

A record field and a column of the same name carry the same value: an enum field is stored
as its value, a date as ISO text. Column lists come from the tables, so a new column needs
only the table, its migration, the record field and the code that sets it.
"""

from __future__ import annotations

import dataclasses
import operator
import typing
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import Row, Table

from twap_schemas.common import ParentStatus
from worker.core.records import OutboxMessage, ParentRecord, SliceRecord
from worker.store.tables import outbox, parents, slices


def _readers(record_type: type) -> dict[str, Callable[[Any], Any]]:
    """Per field, how a column value becomes the field's value (identity when it is one)."""
    hints = typing.get_type_hints(record_type)
    out: dict[str, Callable[[Any], Any]] = {}
    for field in dataclasses.fields(record_type):
        kind = hints[field.name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        if isinstance(base, type) and issubclass(base, Enum):
            out[field.name] = base if base is kind else _optional(base)
        elif base is date:
            out[field.name] = date.fromisoformat
        else:
            out[field.name] = _same
    return out


def _optional(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else read(value)


def _same(value: Any) -> Any:
    return value


def _to_column(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


def _shared(table: Table, record_type: type) -> tuple[str, ...]:
    names = {field.name for field in dataclasses.fields(record_type)}
    return tuple(column.name for column in table.columns if column.name in names)


_PARENT_READERS = _readers(ParentRecord)
_SLICE_READERS = _readers(SliceRecord)
_OUTBOX_READERS = _readers(OutboxMessage)
PARENT_FIELDS = _shared(parents, ParentRecord)
SLICE_FIELDS = _shared(slices, SliceRecord)

SLICE_COLUMNS = tuple(column.name for column in slices.columns)
# A slice as planned has no broker id, reason or send time yet: those nullable columns stay
# NULL and out of the COPY (a third less for the driver to encode on the intake's hot path).
PLANNED_SLICE_COLUMNS = tuple(column.name for column in slices.columns if not column.nullable)
OUTBOX_COLUMNS = tuple(column.name for column in outbox.columns if not column.primary_key)


def parent_values(parent: ParentRecord, now: datetime) -> dict[str, Any]:
    values = {name: _to_column(getattr(parent, name)) for name in PARENT_FIELDS}
    values["open_slices"] = parent.total_slices if parent.status is ParentStatus.ACTIVE else 0
    values["created_at"] = parent.created_at or now
    values["updated_at"] = now
    return values


SliceTuple = Callable[[SliceRecord, datetime], tuple[Any, ...]]


def _tuple_of(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """attrgetter that always returns a tuple (it returns a bare value for one name)."""
    if len(names) == 1:
        name = names[0]
        return lambda record: (getattr(record, name),)
    if not names:
        return lambda record: ()
    return operator.attrgetter(*names)


def _slice_tuple_maker(names: tuple[str, ...]) -> SliceTuple:
    """A function: (record, now) → its row as a tuple in `names` order; `updated_at` is now.
    The intake's hot path (thirty per request): two attrgetters and one tuple, no list."""
    if names[-1] != "updated_at":
        raise ValueError("expected `updated_at` last")
    status_at = names.index("status")
    before, after = _tuple_of(names[:status_at]), _tuple_of(names[status_at + 1 : -1])

    def make(record: SliceRecord, now: datetime) -> tuple[Any, ...]:
        return (*before(record), record.status.value, *after(record), now)

    return make


slice_tuple = _slice_tuple_maker(SLICE_COLUMNS)
_planned_tuple = _slice_tuple_maker(PLANNED_SLICE_COLUMNS)
_UNPLANNED = tuple(name for name in SLICE_FIELDS if name not in PLANNED_SLICE_COLUMNS)
_unplanned = operator.attrgetter(*_UNPLANNED)
_NOTHING_MORE = (None,) * len(_UNPLANNED)


def planned_slice_tuple(record: SliceRecord, now: datetime) -> tuple[Any, ...] | None:
    """A slice's row in PLANNED_SLICE_COLUMNS order; None if it has more to say."""
    if _unplanned(record) != _NOTHING_MORE:
        return None
    return _planned_tuple(record, now)


def outbox_values(message: OutboxMessage, now: datetime) -> dict[str, Any]:
    values = {name: getattr(message, name) for name in OUTBOX_COLUMNS if name != "created_at"}
    values["headers"] = message.headers or None
    values["created_at"] = now
    return values


def _record(readers: dict[str, Callable[[Any], Any]], record_type: type, m: Any) -> Any:
    return record_type(**{name: read(m[name]) for name, read in readers.items()})


def to_parent(row: Row[Any] | Any, prefix: str = "") -> ParentRecord:
    m = _Prefixed(row._mapping, prefix) if prefix else row._mapping
    parent: ParentRecord = _record(_PARENT_READERS, ParentRecord, m)
    return parent


def to_slice(row: Row[Any] | Any) -> SliceRecord:
    record: SliceRecord = _record(_SLICE_READERS, SliceRecord, row._mapping)
    return record


def to_outbox(row: Row[Any] | Any) -> OutboxMessage:
    m = row._mapping
    return OutboxMessage(
        **{name: m[name] for name in _OUTBOX_READERS if name not in {"body", "headers"}},
        body=bytes(m["body"]),
        headers=dict(m["headers"] or {}),
    )


class _Prefixed:
    """Read a joined row's parent columns, labelled `p_<name>` to avoid clashing names."""

    def __init__(self, mapping: Any, prefix: str) -> None:
        self.mapping = mapping
        self.prefix = prefix

    def __getitem__(self, key: str) -> Any:
        return self.mapping[self.prefix + key]
