"""/api/v1/teams: teams group reps under managers (admins manage them)."""

from __future__ import annotations

import asyncpg

from crm_core.api.access import require
from crm_core.api.endpoint import Endpoint
from crm_core.api.listing import (
    Collection,
    SortKey,
    SqlParams,
    fetch_page,
)
from crm_core.api.records import load_visible
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.users import Team, TeamCreate
from crm_core.api_errors import Conflict
from crm_core.changes import ChangeSet

TEAMS = Collection(filters=(), sorts=(SortKey("created_at", "t.created_at", "timestamptz"),
                                      SortKey("name", "t.name", "text")))


async def list_teams(call: Call) -> Reply:
    params = SqlParams()
    base = [f"t.org_id = {params.add(call.me.org_id)}"]
    return Reply(await fetch_page(call, TEAMS, params, base, table="teams", alias="t",
                                  to_item=lambda r: Team.model_validate(dict(r)).model_dump(mode="json")))


async def get_team(call: Call) -> Reply:
    async with call.pool.acquire() as conn:
        row = await load_visible(conn, call.me, table="teams", record_id=call.path_id(), owner_column=None,
                                 what="team")
    return Reply(Team.model_validate(dict(row)))


async def _save(call: Call, team_id: str | None) -> Reply:
    require(call.me, "teams:manage")
    body: TeamCreate = call.body
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        before = None
        try:
            if team_id is None:
                row = await conn.fetchrow("INSERT INTO teams (org_id, name) VALUES ($1, $2) RETURNING *",
                                          me.org_id, body.name)
            else:
                current = await load_visible(conn, me, table="teams", record_id=team_id, owner_column=None,
                                             what="team", for_update=True)
                before = Team.model_validate(dict(current)).model_dump(mode="json")
                row = await conn.fetchrow("UPDATE teams SET name = $2 WHERE id = $1 AND org_id = $3 RETURNING *",
                                          current["id"], body.name, me.org_id)
        except asyncpg.UniqueViolationError:
            raise Conflict("a team with this name exists", {"name": body.name}, code="duplicate_name") from None
        out = Team.model_validate(dict(row))
        await changes.record(conn, action="team.create" if team_id is None else "team.update",
                             resource_type="team", resource_id=str(out.id), before=before,
                             after=out.model_dump(mode="json"))
    return Reply(out, 201 if team_id is None else 200)


async def create_team(call: Call) -> Reply:
    return await _save(call, None)


async def rename_team(call: Call) -> Reply:
    return await _save(call, call.path_id())


async def delete_team(call: Call) -> Reply:
    require(call.me, "teams:manage")
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        current = await load_visible(conn, me, table="teams", record_id=call.path_id(), owner_column=None,
                                     what="team", for_update=True)
        await conn.execute("DELETE FROM teams WHERE id = $1 AND org_id = $2", current["id"], me.org_id)
        await changes.record(conn, action="team.delete", resource_type="team", resource_id=str(current["id"]),
                             before=Team.model_validate(dict(current)).model_dump(mode="json"))
    return Reply(None, 204)


ENDPOINTS = (
    Endpoint("GET", "/api/v1/teams", list_teams, "List teams", "teams", response=Team, paginated=True,
             query=TEAMS.query_params()),
    Endpoint("POST", "/api/v1/teams", create_team, "Create a team (admin)", "teams", body=TeamCreate,
             response=Team, status=201, errors=(400, 401, 403, 409, 413, 422)),
    Endpoint("GET", "/api/v1/teams/{id}", get_team, "Get a team", "teams", response=Team),
    Endpoint("PATCH", "/api/v1/teams/{id}", rename_team, "Rename a team (admin)", "teams", body=TeamCreate,
             response=Team, errors=(400, 401, 403, 404, 409, 413, 422)),
    Endpoint("DELETE", "/api/v1/teams/{id}", delete_team, "Delete a team (admin)", "teams", status=204,
             errors=(401, 403, 404)),
)
