"""/api/v1/users and /api/v1/me: the organization's people (admins manage them)."""

from __future__ import annotations

import asyncio

from crm_core.admin import users as admin_users
from crm_core.admin.users import user_out
from crm_core.api.access import require
from crm_core.api.endpoint import Endpoint
from crm_core.api.listing import (
    Collection,
    Filter,
    SortKey,
    SqlParams,
    fetch_page,
)
from crm_core.api.records import load_visible
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.auth import Me
from crm_core.api.schemas.users import User, UserCreate, UserUpdate
from crm_core.auth.passwords import hash_password
from crm_core.auth.principal import SELF
from crm_core.changes import ChangeSet

USERS = Collection(
    filters=(
        Filter("role", "enum", "u.role = ANY({})", "Role.", many=True, choices=("rep", "manager", "admin")),
        Filter("team_id", "uuid", "u.team_id = {}::uuid", "Team."),
        Filter("is_active", "bool", "u.is_active = {}", "Active or deactivated."),
        Filter("email", "text", "lower(u.email) = lower({})", "Email (case-insensitive)."),
    ),
    sorts=(SortKey("created_at", "u.created_at", "timestamptz"), SortKey("name", "u.name", "text")),
)


async def me(call: Call) -> Reply:
    p = call.me
    return Reply(Me(user_id=p.user_id, org_id=p.org_id, role=p.role, team_ids=list(p.team_ids),
                    permissions=sorted(p.permissions)))


async def list_users(call: Call) -> Reply:
    params = SqlParams()
    base = [f"u.org_id = {params.add(call.me.org_id)}"]
    return Reply(await fetch_page(call, USERS, params, base, table="users", alias="u",
                                  to_item=lambda r: user_out(r).model_dump(mode="json")))


async def get_user(call: Call) -> Reply:
    async with call.pool.acquire() as conn:
        row = await load_visible(conn, call.me, table="users", record_id=call.path_id(), owner_column=None,
                                 what="user")
    return Reply(user_out(row))


async def create_user(call: Call) -> Reply:
    require(call.me, "users:manage")
    body: UserCreate = call.body
    me = call.me
    password_hash = await asyncio.to_thread(hash_password, body.password) if body.password else None
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        out = await admin_users.create_user(conn, changes, body, password_hash)
    await changes.publish(call.pool, call.bus)
    return Reply(out, 201, headers={"Location": f"/api/v1/users/{out.id}"})


async def update_user(call: Call) -> Reply:
    require(call.me, "users:manage")
    body: UserUpdate = call.body
    me = call.me
    updates = body.model_dump(exclude_unset=True)
    if "team_id" in updates and updates["team_id"] is not None:
        updates["team_id"] = str(updates["team_id"])
    for name in ("name", "role", "is_active"):
        if name in updates and updates[name] is None:
            updates.pop(name)
    if "password" in updates:
        password = updates.pop("password")
        updates["password_hash"] = await asyncio.to_thread(hash_password, password) if password else None
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        after = await admin_users.update_user(conn, me, changes, call.path_id(), updates)
    await changes.publish(call.pool, call.bus)
    return Reply(after)


async def deactivate_user(call: Call) -> Reply:
    """Users are deactivated, not deleted: their calls and audit trail keep pointing at them.
    Their sessions and API tokens end with it."""
    require(call.me, "users:manage")
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        await admin_users.deactivate_user(conn, me, changes, call.path_id())
    await changes.publish(call.pool, call.bus)
    return Reply(None, 204)


ENDPOINTS = (
    Endpoint("GET", "/api/v1/me", me, "Who am I: role, teams, permissions", "users", response=Me,
             resource=SELF),
    Endpoint("GET", "/api/v1/users", list_users, "List the organization's users", "users", response=User,
             paginated=True, query=USERS.query_params()),
    Endpoint("POST", "/api/v1/users", create_user, "Create a user (admin)", "users", body=UserCreate,
             response=User, status=201, errors=(400, 401, 403, 404, 409, 413, 422)),
    Endpoint("GET", "/api/v1/users/{id}", get_user, "Get a user", "users", response=User),
    Endpoint("PATCH", "/api/v1/users/{id}", update_user, "Update a user (admin)", "users", body=UserUpdate,
             response=User, errors=(400, 401, 403, 404, 413, 422)),
    Endpoint("DELETE", "/api/v1/users/{id}", deactivate_user, "Deactivate a user (admin)", "users", status=204,
             errors=(401, 403, 404)),
)
