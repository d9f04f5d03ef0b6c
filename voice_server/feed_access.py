"""The CRM's access rules applied to live feeds: who may watch which live call.

A rep watches their own calls; a manager the calls of their team's reps; an
admin every call of the organization. Nobody sees across organizations. The
live floor (every call in progress a viewer may watch) is for managers and
admins; its rule (``crm_core.calls.floor.on_floor``) agrees with ``may_watch``.
Browsers authenticate the WebSocket with a short-lived access token in the
query string (``?access_token=…``) or the session cookie.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import asyncpg
from aiohttp import web

from crm_core.api_errors import ApiError, Forbidden
from crm_core.auth import authenticate
from crm_core.auth.accounts import user_team_id
from crm_core.calls.floor import FLOOR_ROLES, floor_card, live_floor, on_floor
from crm_core.calls.records import call_owner, live_calls_of_rep
from storage.ids import uuid_or_none
from voice_server.live_feed import CallRef, Viewer


class CrmFeedAccess:
    def __init__(self, pool_source: Callable[[], asyncpg.Pool]) -> None:
        self._pool_source = pool_source

    async def viewer(self, request: web.Request) -> Viewer | None:
        """The caller, or None (401); an API token without a calls-reading scope is refused (403)."""
        try:
            principal = await authenticate(request, allow_query_token=True, resource="calls")
        except Forbidden as exc:
            raise web.HTTPForbidden(text=json.dumps(exc.body()), content_type="application/json") from None
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
            row = await call_owner(self._pool_source(), call_uuid)
            if row is None:
                return False
            org_id, rep_id = row["org_id"], row["rep_id"]
        if org_id != viewer.org_id:
            return False
        if viewer.role == "admin" or rep_id == viewer.user_id:
            return True
        if (viewer.role == "manager" and viewer.team_id
                and uuid_or_none(rep_id) and uuid_or_none(org_id)):
            team = await user_team_id(self._pool_source(), rep_id, org_id)
            return team == viewer.team_id
        return False

    async def live_calls_of(self, viewer: Viewer) -> list[CallRef]:
        rows = await live_calls_of_rep(self._pool_source(), viewer.org_id, viewer.user_id)
        return [CallRef(r["id"], r["org_id"], r["rep_id"]) for r in rows]


    def may_use_floor(self, viewer: Viewer) -> bool:
        return viewer.role in FLOOR_ROLES

    def on_floor(self, viewer: Viewer, card: dict) -> bool:
        return on_floor(card, org_id=viewer.org_id, user_id=viewer.user_id, role=viewer.role,
                        team_ids=(viewer.team_id,) if viewer.team_id else ())

    async def floor_of(self, viewer: Viewer) -> list[dict]:
        if not self.may_use_floor(viewer):
            return []
        team_ids = (viewer.team_id,) if viewer.team_id else ()
        reps_of = None if viewer.role == "admin" else (viewer.user_id, team_ids)
        cards = await live_floor(self._pool_source(), viewer.org_id, reps_of=reps_of)
        return [card for card in cards if self.on_floor(viewer, card)]

    async def floor_card(self, call_id: str, org_id: str) -> dict | None:
        if uuid_or_none(call_id) is None or uuid_or_none(org_id) is None:
            return None
        return await floor_card(self._pool_source(), call_id, org_id)
