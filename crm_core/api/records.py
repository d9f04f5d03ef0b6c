"""Small pieces every resource's handlers share: PATCH statements, loading visible rows."""

from __future__ import annotations

from typing import Any

import asyncpg

from crm_core.api.access import visible_clause
from crm_core.api.listing import SqlParams
from crm_core.api_errors import BadRequest, NotFound
from crm_core.auth.principal import Principal


def parse_uuid(value: str, what: str = "id") -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(f"no such {what}") from None


async def load_visible(
    conn: asyncpg.Connection, me: Principal, *, table: str, record_id: str, owner_column: str | None,
    what: str, for_update: bool = False, territory_column: str | None = None,
) -> asyncpg.Record:
    """The row if it exists in the principal's organization and reach, else 404."""
    record_id = parse_uuid(record_id, what)
    params = SqlParams()
    if owner_column is None:
        where = [f"t.org_id = {params.add(me.org_id)}"]
    else:
        where = visible_clause(me, params, alias="t", owner_column=owner_column,
                               territory_column=territory_column)
    where.append(f"t.id = {params.add(record_id)}")
    lock = " FOR UPDATE OF t" if for_update else ""
    row = await conn.fetchrow(f"SELECT t.* FROM {table} t WHERE {' AND '.join(where)}{lock}", *params.values)
    if row is None:
        raise NotFound(f"no such {what}", {"id": record_id})
    return row


async def update_row(conn: asyncpg.Connection, table: str, row_id: str, changes: dict[str, Any],
                     org_id: str, *, also: str = "") -> asyncpg.Record:
    """UPDATE the given columns (names come from our models, never from the client)."""
    if not changes:
        raise BadRequest("the body changes nothing", code="empty_update")
    params = SqlParams(row_id, org_id)
    sets = ", ".join(f"{column} = {params.add(value)}" for column, value in changes.items())
    extra = f", {also}" if also else ""
    return await conn.fetchrow(
        f"UPDATE {table} SET {sets}{extra}, updated_at = now() WHERE id = $1 AND org_id = $2 RETURNING *",
        *params.values,
    )
