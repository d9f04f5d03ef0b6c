"""/api/v1/activities: the timeline of leads and deals (newest first), and notes added to it."""

from __future__ import annotations

from crm_core.api.access import visible_clause
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
from crm_core.api.schemas.activities import Activity, ActivityCreate
from crm_core.changes import ChangeSet

ACTIVITIES = Collection(
    filters=(
        Filter("lead_id", "uuid", "a.lead_id = {}::uuid", "Timeline of this lead."),
        Filter("deal_id", "uuid", "a.deal_id = {}::uuid", "Timeline of this deal."),
        Filter("call_id", "uuid", "a.call_id = {}::uuid", "Entries about this call."),
        Filter("kind", "text", "a.kind = ANY({})", "Kind (note, stage_changed, call, converted, …).", many=True),
        Filter("occurred_after", "datetime", "a.occurred_at >= {}", "Occurred at or after."),
        Filter("occurred_before", "datetime", "a.occurred_at < {}", "Occurred before."),
    ),
    sorts=(SortKey("occurred_at", "a.occurred_at", "timestamptz"),),
    default_sort="-occurred_at",
)


def _reach(call: Call, params: SqlParams) -> list[str]:
    """An entry is visible when the lead, deal or call it belongs to is."""
    me = call.me
    where = [f"a.org_id = {params.add(me.org_id)}"]
    if me.role == "admin":
        return where
    parts = []
    for table, column, owner, territory in (("leads", "lead_id", "owner_id", "territory"),
                                            ("deals", "deal_id", "owner_id", None),
                                            ("calls", "call_id", "rep_id", None)):
        clause = " AND ".join(visible_clause(me, params, alias="v", owner_column=owner,
                                             territory_column=territory))
        parts.append(f"EXISTS (SELECT 1 FROM {table} v WHERE v.id = a.{column} AND {clause})")
    where.append("(" + " OR ".join(parts) + ")")
    return where


async def list_activities(call: Call) -> Reply:
    params = SqlParams()
    base = _reach(call, params)
    return Reply(await fetch_page(call, ACTIVITIES, params, base, table="activities", alias="a",
                                  to_item=lambda r: Activity.model_validate(dict(r)).model_dump(mode="json")))


async def create_activity(call: Call) -> Reply:
    body: ActivityCreate = call.body
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        if body.lead_id is not None:
            subject = await load_visible(conn, me, table="leads", record_id=str(body.lead_id),
                                         owner_column="owner_id", what="lead", territory_column="territory")
            subject_type, lead_id, deal_id = "lead", subject["id"], None
        else:
            subject = await load_visible(conn, me, table="deals", record_id=str(body.deal_id),
                                         owner_column="owner_id", what="deal")
            subject_type, lead_id, deal_id = "deal", subject["lead_id"], subject["id"]
        row = await conn.fetchrow(
            """
            INSERT INTO activities (org_id, kind, subject_type, subject_id, lead_id, deal_id, actor_id, body,
                                    occurred_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now())) RETURNING *
            """,
            me.org_id, body.kind, subject_type, subject["id"], lead_id, deal_id, me.user_id,
            {"text": body.text}, body.occurred_at,
        )
        out = Activity.model_validate(dict(row))
        await changes.record(conn, action="activity.create", resource_type="activity", resource_id=str(out.id),
                             after=out.model_dump(mode="json"), event_type="crm.activity.created")
    await changes.publish(call.pool, call.bus)
    return Reply(out, 201)


ENDPOINTS = (
    Endpoint("GET", "/api/v1/activities", list_activities, "Timeline entries, newest first", "activities",
             response=Activity, paginated=True, query=ACTIVITIES.query_params()),
    Endpoint("POST", "/api/v1/activities", create_activity, "Add a note (or email/meeting/task) to a timeline",
             "activities", body=ActivityCreate, response=Activity, status=201,
             errors=(400, 401, 403, 404, 409, 413, 422)),
)
