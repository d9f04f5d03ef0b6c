"""The CRM's access rules applied to live feeds: who may watch which live call.

A rep watches their own calls; a manager the calls of their team's reps; an
admin every call of the organization. Nobody sees across organizations.
Browsers authenticate the WebSocket with a short-lived access token in the
query string (``?access_token=…``) or the session cookie.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from aiohttp import web

from crm_core.api_errors import ApiError
from crm_core.auth import authenticate
from storage.ids import uuid_or_none
from voice_server.live_feed import CallRef, Viewer

_LIVE_STATUSES = ("queued", "ringing", "in-progress")


class CrmFeedAccess:
    def __init__(self, pool_source: Callable[[], asyncpg.Pool]) -> None:
        self._pool_source = pool_source

    async def viewer(self, request: web.Request) -> Viewer | None:
        try:
            principal = await authenticate(request, allow_query_token=True)
        except ApiError:
            return None
        team = principal.team_ids[0] if principal.team_ids else None
        return Viewer(principal.user_id, principal.org_id, principal.role, team)

    async def may_watch(self, viewer: Viewer, call: CallRef) -> bool:
        org_id, rep_id = call.org_id, call.rep_id
        if org_id is None:  # a call this node has not seen start: ask the CRM
            call_uuid = uuid_or_none(call.call_id)
            if call_uuid is None:
                return False
            # Compare the uuid columns themselves, so the primary key / indexes serve the lookup.
            row = await self._pool_source().fetchrow(
                "SELECT org_id::text AS org_id, rep_id::text AS rep_id FROM calls WHERE id = $1",
                call_uuid)
            if row is None:
                return False
            org_id, rep_id = row["org_id"], row["rep_id"]
        if org_id != viewer.org_id:
            return False
        if viewer.role == "admin" or rep_id == viewer.user_id:
            return True
        if (viewer.role == "manager" and viewer.team_id
                and uuid_or_none(rep_id) and uuid_or_none(org_id)):
            team = await self._pool_source().fetchval(
                "SELECT team_id::text FROM users WHERE id = $1::uuid AND org_id = $2::uuid",
                rep_id, org_id)
            return team == viewer.team_id
        return False

    async def live_calls_of(self, viewer: Viewer) -> list[CallRef]:
        rows = await self._pool_source().fetch(
            "SELECT id::text AS id, org_id::text AS org_id, rep_id::text AS rep_id FROM calls "
            "WHERE org_id = $1::uuid AND rep_id = $2::uuid AND status = ANY($3::text[]) "
            "ORDER BY created_at",
            viewer.org_id, viewer.user_id, list(_LIVE_STATUSES))
        return [CallRef(r["id"], r["org_id"], r["rep_id"]) for r in rows]

