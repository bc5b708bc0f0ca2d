"""Who may do what (TWAP_AUTHZ=on): one grant row per AMQP user, replaced whole by
`grants.set`, with its audit row and the `control.grants.changed` event."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from worker.core import events
from worker.core.access import Grant
from worker.store import audit, inlists, outbox
from worker.store.dialects import dialect_for
from worker.store.tables import access_grants


def _grant(row: Row[tuple[str, list[str], list[str], bool]]) -> Grant:
    return Grant.of(row[0], row[1], row[2], bool(row[3]))


_COLUMNS = (access_grants.c.user_id, access_grants.c.strategies, access_grants.c.actions,
            access_grants.c.operator)


# Built once, its IN list in a few fixed lengths (inlists.py): read for every batch.
_OF_USERS = inlists.built_once(
    select(*_COLUMNS).where(access_grants.c.user_id.in_(bindparam("names", expanding=True))),
    "names", "")


async def of_users(conn: AsyncConnection, users: Iterable[str]) -> dict[str, Grant]:
    found: dict[str, Grant] = {}
    for chunk in inlists.chunks(sorted(set(users))):
        rows = await conn.execute(_OF_USERS, {"names": chunk})
        found.update((row[0], _grant(row)) for row in rows)
    return found


async def of_user(conn: AsyncConnection, user: str) -> Grant | None:
    return (await of_users(conn, [user])).get(user)


async def all_grants(conn: AsyncConnection) -> list[Grant]:
    result = await conn.execute(select(*_COLUMNS).order_by(access_grants.c.user_id))
    return [_grant(row) for row in result]


async def set_grant(conn: AsyncConnection, grant: Grant, *, by: str, reason: str | None,
                    now: datetime) -> Grant | None:
    """Replace the user's grant (audited, published); returns the one it replaced."""
    await dialect_for(conn).lock_keys(conn, [f"grant:{grant.user}"])
    old = await of_user(conn, grant.user)
    await conn.execute(delete(access_grants).where(access_grants.c.user_id == grant.user))
    await conn.execute(insert(access_grants).values(
        user_id=grant.user, strategies=sorted(grant.strategies),
        actions=grant.to_json()["actions"], operator=grant.operator, updated_by=by,
        updated_at=now))
    old_json = old.to_json() if old is not None else None
    await audit.write(conn, "grants", grant.user, old_json, grant.to_json(), by=by,
                      reason=reason, now=now)
    await outbox.write(conn, [events.grants_changed(grant.user, old_json, grant.to_json(),
                                                    operator=by, reason=reason, at=now)], now)
    return old
