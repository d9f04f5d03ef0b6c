"""GET /api/v1/calls/{id}/caller: the caller card of the rep's live screen, and the review gate.

Whoever may see the call (its rep, the rep's managers, the organization's admins) sees who is
on it: the lead the call is linked to (by E.164 number), the lead's open deal and its stage,
and the lead's call before this one. The rep on a call needs that even for a lead another rep
owns, so the card shows it, but says (``visible``) whether the viewer may open those records;
the earlier call's id is given only when the viewer may open it.

A rep reviews their own calls (transcript, prompts, recording) unless the organization's
``settings.reps_review_own_calls`` is false; ``require_review`` is that gate for the review's
endpoints, and ``may_review`` says it to the screen.
"""

from __future__ import annotations

import asyncpg

from crm_core.api.access import visible_clause
from crm_core.api.endpoint import Endpoint
from crm_core.api.listing import SqlParams
from crm_core.api.records import load_visible
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.callers import CallCaller
from crm_core.api_errors import Forbidden
from crm_core.auth.principal import Principal
from crm_core.orgs import org_reps_review_own_calls

CLOSED_STAGES = ("closed_won", "closed_lost")


async def may_review(conn: asyncpg.Connection, me: Principal, call_row: asyncpg.Record) -> bool:
    """May ``me``, who can see the call, open its review? Reps: per the organization's setting."""
    if me.role != "rep":
        return True
    return await org_reps_review_own_calls(conn, me.org_id)


async def require_review(conn: asyncpg.Connection, me: Principal, call_row: asyncpg.Record) -> None:
    if not await may_review(conn, me, call_row):
        raise Forbidden(
            "your organization does not let reps review their own calls", code="review_not_allowed"
        )


async def _visible(
    conn,
    me: Principal,
    table: str,
    record_id,
    owner_column: str,
    territory_column: str | None = None,
) -> bool:
    params = SqlParams()
    where = visible_clause(
        me, params, alias="t", owner_column=owner_column, territory_column=territory_column
    )
    where.append(f"t.id = {params.add(record_id)}")
    return bool(
        await conn.fetchval(f"SELECT 1 FROM {table} t WHERE {' AND '.join(where)}", *params.values)
    )


async def get_caller(call: Call) -> Reply:
    me = call.me
    async with call.pool.acquire() as conn:
        row = await load_visible(
            conn, me, table="calls", record_id=call.path_id(), owner_column="rep_id", what="call"
        )
        card: dict = {
            "call_id": row["id"],
            "lead": None,
            "open_deal": None,
            "last_call": None,
            "may_review": await may_review(conn, me, row),
        }
        lead_id = row["lead_id"]
        lead = lead_id and await conn.fetchrow(
            "SELECT id, first_name, last_name, company, ai_score, grade FROM leads"
            " WHERE id = $1 AND org_id = $2",
            lead_id,
            me.org_id,
        )
        if lead:
            name = " ".join(p for p in (lead["first_name"], lead["last_name"]) if p)
            card["lead"] = {
                **dict(lead),
                "name": name,
                "visible": await _visible(
                    conn, me, "leads", lead_id, "owner_id", territory_column="territory"
                ),
            }
            deal = await conn.fetchrow(
                "SELECT id, name, stage, value, currency FROM deals WHERE org_id = $1"
                " AND (id = $2 OR lead_id = $3) AND closed_at IS NULL"
                " AND stage <> ALL($4::text[])"
                " ORDER BY (id = $2) IS TRUE DESC, updated_at DESC LIMIT 1",
                me.org_id,
                row["deal_id"],
                lead_id,
                list(CLOSED_STAGES),
            )
            if deal:
                card["open_deal"] = {
                    **dict(deal),
                    "visible": await _visible(conn, me, "deals", deal["id"], "owner_id"),
                }
            last = await conn.fetchrow(
                "SELECT id, coalesce(started_at, created_at) AS at, duration_s, status, rep_id"
                " FROM calls WHERE org_id = $1 AND lead_id = $2 AND id <> $3"
                " AND coalesce(started_at, created_at) <= $4"
                " ORDER BY coalesce(started_at, created_at) DESC, id DESC LIMIT 1",
                me.org_id,
                lead_id,
                row["id"],
                row["started_at"] or row["created_at"],
            )
            if last:
                seen = await _visible(conn, me, "calls", last["id"], "rep_id")
                card["last_call"] = {
                    "id": last["id"] if seen else None,
                    "at": last["at"],
                    "duration_s": last["duration_s"],
                    "status": last["status"],
                    "with_you": str(last["rep_id"]) == me.user_id,
                }
    return Reply(CallCaller.model_validate(card))


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/v1/calls/{id}/caller",
        get_caller,
        "Who is on a call: its lead, the lead's open deal and earlier call",
        "calls",
        response=CallCaller,
        description="For whoever may see the call. Also says whether the viewer may open "
        "the call's review (reps: the organization's reps_review_own_calls).",
    ),
)
