"""/api/v1/leads: list, get, create (scored), update, delete, re-score, convert to a deal."""

from __future__ import annotations

from typing import Any

import asyncpg

from crm_core.api.access import check_assignable, visible_clause
from crm_core.api.conditional import check_if_match, record_etag
from crm_core.api.endpoint import Endpoint, QueryParam
from crm_core.api.lead_keys import Holder, conflict_details, find_holder, key_policy, lock_keys
from crm_core.api.listing import (
    Collection,
    Filter,
    SortKey,
    SqlParams,
    fetch_page,
)
from crm_core.api.records import load_visible, update_row
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.deals import Deal
from crm_core.api.schemas.leads import Lead, LeadConvert, LeadCreate, LeadScoreResult, LeadUpdate
from crm_core.api.search_terms import lead_search
from crm_core.api_errors import BadRequest, Conflict, NotFound, Unprocessable
from crm_core.changes import ChangeSet
from crm_core.scoring.lead_scoring import GRADES, LeadInputError, lead_score_columns
from crm_core.scoring.rescoring import (
    score_in_context,  # the org's trained model when active
)

# Fields whose change makes the stored score stale.
_SCORED_FIELDS = frozenset({"title", "company_size", "industry", "source", "email", "phone", "company"})

LEADS = Collection(
    filters=(
        Filter("status", "enum", "l.status = ANY({})", "Lead status.", many=True,
               choices=("new", "contacted", "qualified", "unqualified", "converted")),
        Filter("owner_id", "uuid", "l.owner_id = ANY({}::uuid[])", "Owner user id.", many=True),
        Filter("grade", "enum", "l.grade = ANY({})", "Score grade.", many=True, choices=GRADES),
        Filter("territory", "text", "l.territory = {}", "Territory (exact)."),
        Filter("source", "text", "l.source = {}", "Source (exact)."),
        Filter("industry", "text", "l.industry = {}", "Industry (exact)."),
        Filter("email", "text", "lower(l.email) = lower({})", "Email (case-insensitive)."),
        Filter("company", "text", "l.company ILIKE {} || '%'", "Company name prefix."),
        Filter("min_score", "number", "l.ai_score >= {}", "Lowest ai_score."),
        Filter("created_after", "datetime", "l.created_at >= {}", "Created at or after."),
        Filter("created_before", "datetime", "l.created_at < {}", "Created before."),
        Filter("updated_after", "datetime", "l.updated_at >= {}", "Updated at or after."),
    ),
    sorts=(
        SortKey("created_at", "l.created_at", "timestamptz"),
        SortKey("updated_at", "l.updated_at", "timestamptz"),
        SortKey("ai_score", "coalesce(l.ai_score, -1)", "real"),
        SortKey("last_name", "coalesce(l.last_name, '')", "text"),
    ),
    search=lead_search,
)


def lead_out(row: asyncpg.Record) -> Lead:
    data = dict(row)
    factors = data.get("score_factors") or {}
    data["score_reasons"] = list(factors.get("reasons", []) if isinstance(factors, dict) else factors)
    data["score_model_version"] = factors.get("model_version") if isinstance(factors, dict) else None
    data["enrichment"] = data.get("enrichment") or {}
    return Lead.model_validate(data)


async def score_columns_in_context(conn: asyncpg.Connection, lead: dict[str, Any]) -> dict[str, Any]:
    """ai_score, grade, score_factors and scored_at for a lead (422 if unscorable), scored as the
    re-scoring job does: the organisation's active trained model when it has one, and for a
    stored lead its calls' engagement."""
    try:
        return lead_score_columns(await score_in_context(conn, lead))
    except LeadInputError as exc:
        raise Unprocessable(f"the lead cannot be scored: {exc}", code="unscorable_lead") from None


async def list_leads(call: Call) -> Reply:
    params = SqlParams()
    base = visible_clause(call.me, params, alias="l", owner_column="owner_id",
                          territory_column="territory")
    return Reply(await fetch_page(call, LEADS, params, base, table="leads", alias="l",
                                  to_item=lambda r: lead_out(r).model_dump(mode="json")))


async def _lead_for_update(conn: asyncpg.Connection, call: Call) -> asyncpg.Record:
    """The path's lead, locked for this transaction, if the caller may see it (else 404)."""
    return await load_visible(conn, call.me, table="leads", record_id=call.path_id(), owner_column="owner_id",
                              what="lead", for_update=True, territory_column="territory")


async def get_lead(call: Call) -> Reply:
    async with call.pool.acquire() as conn:
        row = await load_visible(conn, call.me, table="leads", record_id=call.path_id(),
                                 owner_column="owner_id", what="lead", territory_column="territory")
    return Reply(lead_out(row), headers={"ETag": record_etag(row)})


async def visible_or_none(conn: asyncpg.Connection, call: Call, lead_id: str) -> asyncpg.Record | None:
    try:
        return await load_visible(conn, call.me, table="leads", record_id=lead_id, owner_column="owner_id",
                                  what="lead", for_update=True, territory_column="territory")
    except NotFound:
        return None


def duplicate_conflict(holder: Holder, visible: bool) -> Conflict:
    """409 naming the lead that holds the key; its id only to a caller who may see that lead."""
    details = conflict_details(holder)
    if not visible:
        del details["existing_id"]
    return Conflict(f"a lead with this {holder.key} exists", details, code="duplicate_lead")


async def create_lead(call: Call) -> Reply:
    on_duplicate = call.request.query.get("on_duplicate", "error")
    if on_duplicate not in ("error", "merge"):
        raise BadRequest("on_duplicate is error or merge", {"on_duplicate": on_duplicate}, code="invalid_query")
    changes = ChangeSet(call.me.org_id, call.me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        status, row = await create_in(conn, call, call.body, changes, on_duplicate=on_duplicate)
    await changes.publish(call.pool, call.bus)
    lead = lead_out(row)
    return Reply(lead, status, headers={"Location": f"/api/v1/leads/{lead.id}", "ETag": record_etag(row)})


async def create_in(conn: asyncpg.Connection, call: Call, body: LeadCreate, changes: ChangeSet, *,
                    on_duplicate: str = "error") -> tuple[int, asyncpg.Record]:
    """Create the lead in the open transaction: 201 and its row, or (merge) 200 and the row of
    the lead holding its key; 409 ``duplicate_lead`` when one does and no merge was asked."""
    me = call.me
    fields = body.model_dump(mode="json")
    fields["owner_id"] = fields["owner_id"] or me.user_id
    fields["enrichment"] = fields["enrichment"] or {}
    await check_assignable(conn, me, fields["owner_id"])
    policy = await key_policy(conn, me.org_id)
    if policy.keys:
        await lock_keys(conn, me.org_id)
        holder = await find_holder(conn, me.org_id, policy, fields)
        if holder is not None:
            existing = await visible_or_none(conn, call, holder.lead_id)
            if existing is None or on_duplicate == "error":
                raise duplicate_conflict(holder, existing is not None)
            # merge: the body's fields land on the lead that holds the key, as a PATCH would
            given = body.model_dump(mode="json", exclude_unset=True)
            given.pop("owner_id", None)  # the existing lead keeps its owner
            if given.get("enrichment") is None:
                given.pop("enrichment", None)
            row, _ = await apply_update(conn, call, existing, given, changes, sorted(given))
            return 200, row
    fields.update(await score_columns_in_context(conn, {**fields, "org_id": me.org_id}))
    params = SqlParams(me.org_id)
    columns = ", ".join(fields)
    values = ", ".join(params.add(v) for v in fields.values())
    row = await conn.fetchrow(f"INSERT INTO leads (org_id, {columns}) VALUES ($1, {values}) RETURNING *",
                              *params.values)
    lead = lead_out(row)
    await changes.record(conn, action="lead.create", resource_type="lead", resource_id=str(lead.id),
                         after=lead.model_dump(mode="json"), event_type="crm.lead.created")
    return 201, row


async def apply_update(conn: asyncpg.Connection, call: Call, current: asyncpg.Record, updates: dict[str, Any],
                        changes: ChangeSet, changed: list[str]) -> tuple[asyncpg.Record, Lead]:
    """PATCH ``updates`` onto the locked ``current`` lead: keys checked, re-scored, audited."""
    me = call.me
    if "owner_id" in updates:
        await check_assignable(conn, me, updates["owner_id"])
    if {"email", "phone"} & updates.keys():
        policy = await key_policy(conn, me.org_id)
        if policy.keys:
            await lock_keys(conn, me.org_id)
            holder = await find_holder(conn, me.org_id, policy, {**dict(current), **updates},
                                       exclude_id=str(current["id"]))
            if holder is not None and holder.key in updates:
                visible = await visible_or_none(conn, call, holder.lead_id) is not None
                raise duplicate_conflict(holder, visible)
    if not updates:
        return current, lead_out(current)
    if _SCORED_FIELDS & updates.keys():
        updates.update(await score_columns_in_context(conn, {**dict(current), **updates}))
    row = await update_row(conn, "leads", current["id"], updates, me.org_id)
    before, after = lead_out(current), lead_out(row)
    await changes.record(conn, action="lead.update", resource_type="lead", resource_id=str(after.id),
                         before=before.model_dump(mode="json"), after=after.model_dump(mode="json"),
                         event_type="crm.lead.updated",
                         payload={"lead": after.model_dump(mode="json"), "changed": changed})
    return row, after


async def update_lead(call: Call) -> Reply:
    body: LeadUpdate = call.body
    me = call.me
    updates = body.model_dump(mode="json", exclude_unset=True)
    if "enrichment" in updates and updates["enrichment"] is None:
        updates["enrichment"] = {}
    if not updates:
        # before If-Match: a request that changes nothing is malformed whatever the record's version
        raise BadRequest("the body changes nothing", code="empty_update")
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        current = await _lead_for_update(conn, call)
        check_if_match(call.request, current)
        row, after = await apply_update(conn, call, current, updates, changes, sorted(body.model_fields_set))
    await changes.publish(call.pool, call.bus)
    return Reply(after, headers={"ETag": record_etag(row)})


async def delete_lead(call: Call) -> Reply:
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        current = await _lead_for_update(conn, call)
        check_if_match(call.request, current)
        await delete_in(conn, me.org_id, current, changes)
    await changes.publish(call.pool, call.bus)
    return Reply(None, 204)


async def delete_in(conn: asyncpg.Connection, org_id: str, current: asyncpg.Record, changes: ChangeSet) -> None:
    await conn.execute("DELETE FROM leads WHERE id = $1 AND org_id = $2", current["id"], org_id)
    await changes.record(conn, action="lead.delete", resource_type="lead", resource_id=str(current["id"]),
                         before=lead_out(current).model_dump(mode="json"), event_type="crm.lead.deleted",
                         payload={"id": str(current["id"])})


async def rescore_lead(call: Call) -> Reply:
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        current = await _lead_for_update(conn, call)
        columns = await score_columns_in_context(conn, dict(current))
        row = await update_row(conn, "leads", current["id"], columns, me.org_id)
        out = LeadScoreResult(lead_id=row["id"], score=columns["ai_score"], grade=columns["grade"],
                              reasons=columns["score_factors"]["reasons"],
                              model_version=columns["score_factors"]["model_version"])
        await changes.record(conn, action="lead.score", resource_type="lead", resource_id=str(row["id"]),
                             before={"ai_score": current["ai_score"], "grade": current["grade"]},
                             after=out.model_dump(mode="json"), event_type="crm.lead.scored")
    await changes.publish(call.pool, call.bus)
    return Reply(out)


async def convert_lead(call: Call) -> Reply:
    from crm_core.api.deals import deal_out
    from crm_core.api.pipelines import resolve_stage

    body: LeadConvert = call.body
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        lead = await _lead_for_update(conn, call)
        if lead["status"] == "converted":
            raise Conflict("the lead is already converted", {"lead_id": str(lead["id"])},
                           code="already_converted")
        person = " ".join(p for p in (lead["first_name"], lead["last_name"]) if p)
        name = body.name or lead["company"] or person or "Deal"
        stage = await resolve_stage(conn, me.org_id, body.pipeline, body.stage)
        deal = await conn.fetchrow(
            """
            INSERT INTO deals (org_id, lead_id, owner_id, name, company, value, currency, stage_id,
                               expected_close)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *
            """,
            me.org_id, lead["id"], lead["owner_id"] or me.user_id, name, lead["company"], body.value,
            body.currency, stage["id"], body.expected_close,
        )
        await conn.execute("UPDATE leads SET status = 'converted', updated_at = now() WHERE id = $1 AND org_id = $2",
                           lead["id"], me.org_id)
        await conn.execute(
            """
            INSERT INTO activities (org_id, kind, subject_type, subject_id, lead_id, deal_id, actor_id, body)
            VALUES ($1, 'converted', 'lead', $2, $2, $3, $4, $5)
            """,
            me.org_id, lead["id"], deal["id"], me.user_id, {"deal_id": str(deal["id"]), "deal_name": name},
        )
        out = deal_out(deal)
        await changes.record(conn, action="lead.convert", resource_type="lead", resource_id=str(lead["id"]),
                             before={"status": lead["status"]}, after={"status": "converted"},
                             event_type="crm.lead.converted",
                             payload={"lead_id": str(lead["id"]), "deal": out.model_dump(mode="json")})
        await changes.record(conn, action="deal.create", resource_type="deal", resource_id=str(out.id),
                             after=out.model_dump(mode="json"), event_type="crm.deal.created")
    await changes.publish(call.pool, call.bus)
    return Reply(out, 201, headers={"Location": f"/api/v1/deals/{out.id}"})


ENDPOINTS = (
    Endpoint("GET", "/api/v1/leads", list_leads, "List leads", "leads", response=Lead, paginated=True,
             query=LEADS.query_params()),
    Endpoint("POST", "/api/v1/leads", create_lead, "Create a lead (scored on creation)", "leads",
             body=LeadCreate, response=Lead, status=201, errors=(400, 401, 403, 409, 413, 422), etag=True,
             query=(QueryParam("on_duplicate", {"type": "string", "enum": ["error", "merge"], "default": "error"},
                               "A lead with the same e-mail or phone exists: error answers 409 with its id, "
                               "merge writes the given fields onto it (200)."),),
             also_ok=(200,),
             description="Leads are unique per organisation by e-mail and phone "
                         "(organizations.settings.lead_unique_keys)."),
    Endpoint("GET", "/api/v1/leads/{id}", get_lead, "Get a lead", "leads", response=Lead,
             etag=True),
    Endpoint("PATCH", "/api/v1/leads/{id}", update_lead, "Update a lead", "leads", body=LeadUpdate,
             response=Lead, errors=(400, 401, 403, 404, 409, 412, 413, 422), etag=True),
    Endpoint("DELETE", "/api/v1/leads/{id}", delete_lead, "Delete a lead", "leads", status=204,
             errors=(401, 403, 404, 412)),
    Endpoint("POST", "/api/v1/leads/{id}/score", rescore_lead,
             "Re-score a lead (profile plus what its calls showed: talk time, sentiment)", "leads",
             response=LeadScoreResult),
    Endpoint("POST", "/api/v1/leads/{id}/convert", convert_lead, "Convert a lead into a deal", "leads",
             body=LeadConvert, response=Deal, status=201, errors=(400, 401, 403, 404, 409, 413, 422)),
)
