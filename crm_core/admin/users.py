"""The organization's people, as admins manage them (the users API and ``coachline users``)."""

from __future__ import annotations

from typing import Any

import asyncpg

from crm_core.api.records import load_visible, update_row
from crm_core.api.schemas.users import User, UserCreate
from crm_core.api_errors import Conflict, Forbidden, NotFound
from crm_core.auth.principal import PERMISSIONS_BY_ROLE, Principal
from crm_core.auth.tokens import end_sign_ins
from crm_core.changes import ChangeSet

# Who a command-line change is made by: no user, the organization's admin rights.
_NOBODY = "00000000-0000-0000-0000-000000000000"


def operator(org_id: str) -> tuple[Principal, ChangeSet]:
    """The principal and audit trail of an operator's command (``coachline users …``): admin
    rights in ``org_id``, audited as the system."""
    principal = Principal(
        user_id=_NOBODY, org_id=org_id, role="admin", permissions=PERMISSIONS_BY_ROLE["admin"]
    )
    return principal, ChangeSet(org_id, None, actor_kind="system")


def user_out(row: asyncpg.Record) -> User:
    return User.model_validate(dict(row))


async def check_team(conn: asyncpg.Connection, org_id: str, team_id: object) -> None:
    if team_id is not None and not await conn.fetchval(
        "SELECT true FROM teams WHERE id = $1 AND org_id = $2", str(team_id), org_id
    ):
        raise NotFound("no such team", {"team_id": str(team_id)})


async def create_user(
    conn: asyncpg.Connection, changes: ChangeSet, body: UserCreate, password_hash: str | None
) -> User:
    """Add a user to the organization. Call inside a transaction."""
    org_id = changes.org_id
    await check_team(conn, org_id, body.team_id)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                """
                INSERT INTO users (org_id, email, name, role, team_id, territory, phone, sip_uri, password_hash)
                VALUES ($1, lower($2), $3, $4, $5, $6, $7, $8, $9) RETURNING *
                """,
                org_id,
                body.email,
                body.name,
                body.role,
                body.team_id,
                body.territory,
                body.phone,
                body.sip_uri,
                password_hash,
            )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "a user with this email exists", {"email": body.email}, code="duplicate_email"
        ) from None
    out = user_out(row)
    await changes.record(
        conn,
        action="user.create",
        resource_type="user",
        resource_id=str(out.id),
        after=out.model_dump(mode="json"),
        event_type="crm.user.created",
    )
    return out


async def update_user(
    conn: asyncpg.Connection,
    me: Principal,
    changes: ChangeSet,
    user_id: str,
    updates: dict[str, Any],
) -> User:
    """Change some of a user's fields (``password_hash`` already hashed). A new password or a
    deactivation ends the user's sign-ins. Call inside a transaction."""
    current = await load_visible(
        conn, me, table="users", record_id=user_id, owner_column=None, what="user", for_update=True
    )
    if str(current["id"]) == me.user_id and (
        updates.get("role", "admin") != "admin" or updates.get("is_active") is False
    ):
        raise Forbidden("admins cannot demote or deactivate themselves", code="self_lockout")
    await check_team(conn, me.org_id, updates.get("team_id"))
    row = await update_row(conn, "users", current["id"], updates, me.org_id)
    if updates.get("is_active") is False:
        await end_sign_ins(conn, me.org_id, str(current["id"]))
    elif "password_hash" in updates:
        # whoever knew the old password keeps nothing it opened; the caller's own credential stays
        await end_sign_ins(
            conn,
            me.org_id,
            str(current["id"]),
            keep_session_id=me.session_id,
            keep_api_token_id=me.api_token_id,
        )
    before, after = user_out(current), user_out(row)
    await changes.record(
        conn,
        action="user.update",
        resource_type="user",
        resource_id=str(after.id),
        before=before.model_dump(mode="json"),
        after=after.model_dump(mode="json"),
        event_type="crm.user.updated",
    )
    return after


async def deactivate_user(
    conn: asyncpg.Connection, me: Principal, changes: ChangeSet, user_id: str
) -> User:
    """Deactivate, not delete (calls and the audit trail keep pointing at the user): every session
    and API token of theirs ends with it. Call inside a transaction."""
    current = await load_visible(
        conn, me, table="users", record_id=user_id, owner_column=None, what="user", for_update=True
    )
    if str(current["id"]) == me.user_id:
        raise Forbidden("admins cannot deactivate themselves", code="self_lockout")
    row = await update_row(conn, "users", current["id"], {"is_active": False}, me.org_id)
    await end_sign_ins(conn, me.org_id, str(current["id"]))
    after = user_out(row)
    await changes.record(
        conn,
        action="user.deactivate",
        resource_type="user",
        resource_id=str(row["id"]),
        before=user_out(current).model_dump(mode="json"),
        after=after.model_dump(mode="json"),
        event_type="crm.user.deactivated",
    )
    return after


async def list_users(conn: asyncpg.Connection, org_id: str) -> list[User]:
    rows = await conn.fetch("SELECT * FROM users WHERE org_id = $1 ORDER BY created_at", org_id)
    return [user_out(r) for r in rows]


async def user_by_email(conn: asyncpg.Connection, org_id: str, email: str) -> str:
    """The id of the organization's user with this email (case-insensitive), else 404."""
    user_id = await conn.fetchval(
        "SELECT id FROM users WHERE org_id = $1 AND lower(email) = lower($2)", org_id, email
    )
    if user_id is None:
        raise NotFound("no such user", {"email": email})
    return str(user_id)


async def team_by_name(conn: asyncpg.Connection, org_id: str, name: str) -> str:
    team_id = await conn.fetchval(
        "SELECT id FROM teams WHERE org_id = $1 AND name = $2", org_id, name
    )
    if team_id is None:
        raise NotFound("no such team", {"team": name})
    return str(team_id)
