"""/api/v1/api-tokens: admins issue and revoke API tokens; the secret is shown once."""

from __future__ import annotations

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
from crm_core.api.schemas.users import ApiToken, ApiTokenCreate, ApiTokenCreated
from crm_core.api_errors import Forbidden, Unprocessable
from crm_core.auth.principal import ALL_SCOPES, ROLE_RANK
from crm_core.auth.tokens import create_api_token
from crm_core.changes import ChangeSet

MANAGE = "api_tokens:manage"

TOKENS = Collection(
    filters=(
        Filter("user_id", "uuid", "k.user_id = {}::uuid", "Whose token."),
        Filter("revoked", "bool", "(k.revoked_at IS NOT NULL) = {}", "Revoked or live."),
    ),
    sorts=(SortKey("created_at", "k.created_at", "timestamptz"),),
)


async def list_tokens(call: Call) -> Reply:
    require(call.me, MANAGE)
    params = SqlParams()
    base = [f"k.org_id = {params.add(call.me.org_id)}"]
    return Reply(await fetch_page(call, TOKENS, params, base, table="api_tokens", alias="k",
                                  to_item=lambda r: ApiToken.model_validate(dict(r)).model_dump(mode="json")))


async def create_token(call: Call) -> Reply:
    require(call.me, MANAGE)
    body: ApiTokenCreate = call.body
    me = call.me
    unknown = sorted(set(body.scopes) - ALL_SCOPES)
    if unknown or not body.scopes:
        raise Unprocessable("unknown or missing scopes", {"unknown": unknown, "allowed": sorted(ALL_SCOPES)},
                            code="invalid_scopes")
    # A token never grants more than its creator holds: its own scopes, within its own role.
    not_held = sorted(set(body.scopes) - me.grantable_scopes())
    if not_held:
        raise Forbidden("a token may only carry scopes you hold yourself", {"not_held": not_held},
                        code="insufficient_scope")
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        user_id = me.user_id
        if body.user_id is not None:
            user = await load_visible(conn, me, table="users", record_id=str(body.user_id), owner_column=None,
                                      what="user")
            user_id = str(user["id"])
            if ROLE_RANK[user["role"]] > ROLE_RANK[me.role]:
                raise Forbidden("a token may not carry a role above yours", {"user_id": user_id},
                                code="insufficient_scope")
        issued = await create_api_token(conn, org_id=me.org_id, user_id=user_id, name=body.name,
                                        scopes=body.scopes, expires_at=body.expires_at)
        token = ApiToken.model_validate(dict(issued.row))
        await changes.record(conn, action="api_token.create", resource_type="api_token",
                             resource_id=str(token.id), after=token.model_dump(mode="json"))
    return Reply(ApiTokenCreated(**token.model_dump(), token=issued.token), 201)


async def revoke_token(call: Call) -> Reply:
    require(call.me, MANAGE)
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        current = await load_visible(conn, me, table="api_tokens", record_id=call.path_id(), owner_column=None,
                                     what="API token", for_update=True)
        row = await conn.fetchrow(
            "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND org_id = $2 RETURNING *",
            current["id"], me.org_id,
        )
        await changes.record(conn, action="api_token.revoke", resource_type="api_token",
                             resource_id=str(row["id"]),
                             after=ApiToken.model_validate(dict(row)).model_dump(mode="json"))
    return Reply(None, 204)


ENDPOINTS = (
    Endpoint("GET", "/api/v1/api-tokens", list_tokens, "List API tokens (admin)", "api-tokens",
             response=ApiToken, paginated=True, query=TOKENS.query_params()),
    Endpoint("POST", "/api/v1/api-tokens", create_token, "Create an API token (admin); the secret is shown once",
             "api-tokens", body=ApiTokenCreate, response=ApiTokenCreated, status=201,
             errors=(400, 401, 403, 404, 409, 413, 422)),
    Endpoint("DELETE", "/api/v1/api-tokens/{id}", revoke_token, "Revoke an API token (admin)", "api-tokens",
             status=204, errors=(401, 403, 404)),
)
