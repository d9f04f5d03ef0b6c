"""/api/v1/deals: list, get, create, update (stage changes become activities), delete, predict.

A deal's stage is one of its pipeline's stages (crm_core.api.pipelines.resolve_stage); the
database closes the deal when it enters a won or lost stage, reopens it when it goes back to an
open one, and keeps its stage history (migration 0021's triggers).
"""

from __future__ import annotations

import asyncpg

from crm_core.api.access import check_assignable, visible_clause
from crm_core.api.conditional import check_if_match, record_etag
from crm_core.api.endpoint import Endpoint
from crm_core.api.listing import (
    Collection,
    Filter,
    SortKey,
    SqlParams,
    fetch_page,
)
from crm_core.api.pipelines import resolve_stage
from crm_core.api.records import load_visible, update_row
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.deals import Deal, DealCreate, DealPredictionResult, DealUpdate
from crm_core.api.schemas.pipelines import StageHistoryEntry
from crm_core.api.search_terms import deal_search
from crm_core.api_errors import BadRequest, Conflict, NotFound, Unprocessable
from crm_core.changes import ChangeSet
from crm_core.scoring.deal_features import DealInputError
from crm_core.scoring.deal_inputs import (
    predict_and_store_row,  # timeline + call signals, stored
)

DEALS = Collection(
    filters=(
        Filter("stage", "text", "d.stage = ANY({})", "Pipeline stage.", many=True),
        Filter("pipeline", "text", "d.pipeline = {}", "Pipeline name."),
        Filter("pipeline_id", "uuid", "d.pipeline_id = {}::uuid", "Pipeline id."),
        Filter("stage_id", "uuid", "d.stage_id = ANY({}::uuid[])", "Stage id.", many=True),
        Filter("owner_id", "uuid", "d.owner_id = ANY({}::uuid[])", "Owner user id.", many=True),
        Filter("lead_id", "uuid", "d.lead_id = {}::uuid", "The lead the deal came from."),
        Filter("min_value", "number", "d.value >= {}", "Smallest value."),
        Filter("max_value", "number", "d.value <= {}", "Largest value."),
        Filter("closed", "bool", "(d.closed_at IS NOT NULL) = {}", "Closed (won or lost) or open."),
        Filter("created_after", "datetime", "d.created_at >= {}", "Created at or after."),
        Filter("created_before", "datetime", "d.created_at < {}", "Created before."),
        Filter("updated_after", "datetime", "d.updated_at >= {}", "Updated at or after."),
    ),
    sorts=(
        SortKey("created_at", "d.created_at", "timestamptz"),
        SortKey("updated_at", "d.updated_at", "timestamptz"),
        SortKey("value", "d.value", "numeric"),
        SortKey("expected_close", "coalesce(d.expected_close, 'infinity'::date)", "date"),
        SortKey("name", "d.name", "text"),
    ),
    search=deal_search,
)


def deal_out(row: asyncpg.Record) -> Deal:
    data = dict(row)
    data["value"] = float(data["value"])
    data["currency"] = data["currency"].strip()
    return Deal.model_validate(data)


async def _check_lead(conn: asyncpg.Connection, call: Call, lead_id: str | None) -> None:
    if lead_id is not None:
        await load_visible(conn, call.me, table="leads", record_id=lead_id, owner_column="owner_id",
                           what="lead", territory_column="territory")


def _lost_reason_check(reason: str | None, stage_type: str) -> None:
    if reason is not None and stage_type != "lost":
        raise Unprocessable("a lost reason goes with a lost stage", [
            {"loc": ["body", "lost_reason"], "type": "lost_reason_without_lost_stage",
             "message": "only a deal in a lost stage has a lost reason"}])


def _gone() -> Conflict:
    # checked first, then deleted by a concurrent request (an admin deleting the stage, say)
    return Conflict("the stage or a record the deal refers to was deleted meanwhile; try again",
                    code="reference_gone")


async def list_deals(call: Call) -> Reply:
    params = SqlParams()
    base = visible_clause(call.me, params, alias="d", owner_column="owner_id")
    return Reply(await fetch_page(call, DEALS, params, base, table="deals", alias="d",
                                  to_item=lambda r: deal_out(r).model_dump(mode="json")))


async def get_deal(call: Call) -> Reply:
    async with call.pool.acquire() as conn:
        row = await load_visible(conn, call.me, table="deals", record_id=call.path_id(),
                                 owner_column="owner_id", what="deal")
    return Reply(deal_out(row), headers={"ETag": record_etag(row)})


async def create_deal(call: Call) -> Reply:
    body: DealCreate = call.body
    me = call.me
    owner = str(body.owner_id) if body.owner_id else me.user_id
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        await check_assignable(conn, me, owner)
        await _check_lead(conn, call, str(body.lead_id) if body.lead_id else None)
        stage = await resolve_stage(conn, me.org_id, body.pipeline, body.stage)
        _lost_reason_check(body.lost_reason, stage["type"])
        try:
            row = await conn.fetchrow(
                """
                INSERT INTO deals (org_id, lead_id, owner_id, name, company, value, currency, stage_id,
                                   lost_reason, expected_close)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *
                """,
                me.org_id, body.lead_id, owner, body.name, body.company, body.value, body.currency,
                stage["id"], body.lost_reason, body.expected_close,
            )
        except asyncpg.ForeignKeyViolationError:
            raise _gone() from None
        deal = deal_out(row)
        await changes.record(conn, action="deal.create", resource_type="deal", resource_id=str(deal.id),
                             after=deal.model_dump(mode="json"), event_type="crm.deal.created")
    await changes.publish(call.pool, call.bus)
    return Reply(deal, 201, headers={"Location": f"/api/v1/deals/{deal.id}", "ETag": record_etag(row)})


async def update_deal(call: Call) -> Reply:
    body: DealUpdate = call.body
    me = call.me
    updates = body.model_dump(exclude_unset=True)
    if "owner_id" in updates and updates["owner_id"] is not None:
        updates["owner_id"] = str(updates["owner_id"])
    if not updates:
        # before If-Match: a request that changes nothing is malformed whatever the record's version
        raise BadRequest("the body changes nothing", code="empty_update")
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        current = await load_visible(conn, me, table="deals", record_id=call.path_id(),
                                     owner_column="owner_id", what="deal", for_update=True)
        check_if_match(call.request, current)
        if "owner_id" in updates:
            await check_assignable(conn, me, updates["owner_id"])
        stage_changed = False
        stage_type = None
        if "pipeline" in updates or "stage" in updates:
            pipeline = updates.pop("pipeline", current["pipeline"])
            moved_pipeline = pipeline != current["pipeline"]
            # another pipeline without a stage named: its first open stage
            name = updates.pop("stage", None if moved_pipeline else current["stage"])
            target = await resolve_stage(conn, me.org_id, pipeline, name)
            stage_changed, stage_type = target["id"] != current["stage_id"], target["type"]
            updates["stage_id"] = target["id"]
        if "lost_reason" in updates:
            if stage_type is None:
                stage_type = await conn.fetchval("SELECT type FROM pipeline_stages WHERE org_id = $1 AND id = $2",
                                                 me.org_id, current["stage_id"])
            _lost_reason_check(updates["lost_reason"], stage_type)
        try:
            row = await update_row(conn, "deals", current["id"], updates, me.org_id)
        except asyncpg.ForeignKeyViolationError:
            raise _gone() from None
        before, after = deal_out(current), deal_out(row)
        await changes.record(conn, action="deal.update", resource_type="deal", resource_id=str(after.id),
                             before=before.model_dump(mode="json"), after=after.model_dump(mode="json"),
                             event_type="crm.deal.updated",
                             payload={"deal": after.model_dump(mode="json"), "changed": sorted(body.model_fields_set)})
        if stage_changed:
            transition = {"from": current["stage"], "to": row["stage"], "deal_id": str(row["id"])}
            await conn.execute(
                """
                INSERT INTO activities (org_id, kind, subject_type, subject_id, lead_id, deal_id, actor_id, body)
                VALUES ($1, 'stage_changed', 'deal', $2, $3, $2, $4, $5)
                """,
                me.org_id, row["id"], row["lead_id"], me.user_id, transition,
            )
            await changes.record(conn, action="deal.stage_change", resource_type="deal",
                                 resource_id=str(row["id"]), before={"stage": current["stage"]},
                                 after={"stage": row["stage"]}, event_type="crm.deal.stage_changed",
                                 payload=transition)
    await changes.publish(call.pool, call.bus)
    return Reply(after, headers={"ETag": record_etag(row)})


async def stage_history(call: Call) -> Reply:
    async with call.pool.acquire() as conn:
        deal = await load_visible(conn, call.me, table="deals", record_id=call.path_id(),
                                  owner_column="owner_id", what="deal")
        rows = await conn.fetch(
            """
            SELECT stage_id, stage_name AS stage, stage_type AS type, entered_at, left_at, migrated_from,
                   extract(epoch FROM coalesce(left_at, now()) - entered_at)::float8 AS seconds_in_stage
            FROM deal_stage_history WHERE org_id = $1 AND deal_id = $2
            ORDER BY entered_at, left_at NULLS LAST, id
            """,
            call.me.org_id, deal["id"],
        )
    return Reply({"data": [StageHistoryEntry.model_validate(dict(r)).model_dump(mode="json") for r in rows],
                  "next_cursor": None})


async def delete_deal(call: Call) -> Reply:
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        current = await load_visible(conn, me, table="deals", record_id=call.path_id(),
                                     owner_column="owner_id", what="deal", for_update=True)
        check_if_match(call.request, current)
        await conn.execute("DELETE FROM deals WHERE id = $1 AND org_id = $2", current["id"], me.org_id)
        await changes.record(conn, action="deal.delete", resource_type="deal", resource_id=str(current["id"]),
                             before=deal_out(current).model_dump(mode="json"), event_type="crm.deal.deleted",
                             payload={"id": str(current["id"])})
    await changes.publish(call.pool, call.bus)
    return Reply(None, 204)


async def predict(call: Call) -> Reply:
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        deal = await load_visible(conn, me, table="deals", record_id=call.path_id(),
                                  owner_column="owner_id", what="deal")
        try:
            # the timeline and the calls' signals, read the same way the background jobs read them
            stored = await predict_and_store_row(conn, me.org_id, deal["id"])
        except DealInputError as exc:
            raise Unprocessable(f"the deal cannot be predicted: {exc}", code="unpredictable_deal") from None
        if stored is None:
            raise NotFound("no such deal", {"id": str(deal["id"])})
        result, row = stored
        out = DealPredictionResult(id=row["id"], deal_id=deal["id"], win_probability=row["win_probability"],
                                   predicted_close=row["predicted_close"], risk_flags=list(result.risk_flags),
                                   reasons=list(result.reasons), model_version=row["model_version"],
                                   created_at=row["created_at"])
        await changes.record(conn, action="deal.predict", resource_type="deal", resource_id=str(deal["id"]),
                             after=out.model_dump(mode="json"), event_type="crm.deal.predicted")
    await changes.publish(call.pool, call.bus)
    return Reply(out)


ENDPOINTS = (
    Endpoint("GET", "/api/v1/deals", list_deals, "List deals", "deals", response=Deal, paginated=True,
             query=DEALS.query_params()),
    Endpoint("POST", "/api/v1/deals", create_deal, "Create a deal", "deals", body=DealCreate, response=Deal,
             status=201, errors=(400, 401, 403, 404, 409, 413, 422), etag=True),
    Endpoint("GET", "/api/v1/deals/{id}", get_deal, "Get a deal", "deals", response=Deal,
             etag=True),
    Endpoint("PATCH", "/api/v1/deals/{id}", update_deal, "Update a deal (stage changes are recorded)", "deals",
             body=DealUpdate, response=Deal, errors=(400, 401, 403, 404, 409, 412, 413, 422), etag=True),
    Endpoint("GET", "/api/v1/deals/{id}/stage-history", stage_history,
             "The deal's stages, oldest first, with the time spent in each", "deals",
             response=StageHistoryEntry, paginated=True,
             description="Every stage the deal entered (one page: the whole history), and how long it stayed."),
    Endpoint("DELETE", "/api/v1/deals/{id}", delete_deal, "Delete a deal", "deals", status=204,
             errors=(401, 403, 404, 412)),
    Endpoint("POST", "/api/v1/deals/{id}/predict", predict, "Predict the deal's outcome (stored)", "deals",
             response=DealPredictionResult, errors=(400, 401, 403, 404, 422)),
)
