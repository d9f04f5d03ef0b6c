"""POST /api/v1/leads/batch: up to 100 creates, updates and deletes of leads in one request.

Each item is what its single request would do (``POST /leads``, ``PATCH /leads/{id}``,
``DELETE /leads/{id}``): the same validation, reach, duplicate keys, scoring, audit entries and
events, in its own savepoint, and its result carries the status and error that request would
have answered. Without ``all_or_nothing`` the items that succeed are written and the others
reported; with it, one failure rolls every item back (``applied: false``). Batches take no
``If-Match``: a client that needs it uses the single requests.
"""

from __future__ import annotations

from typing import Any

from crm_core.api.endpoint import Endpoint
from crm_core.api.leads import apply_update, create_in, delete_in, lead_out
from crm_core.api.records import load_visible
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.leads import LeadBatch, LeadBatchResult, LeadBatchResults
from crm_core.api_errors import ApiError, BadRequest
from crm_core.changes import ChangeSet


class _RollBack(Exception):
    """Raised to undo the whole batch (all_or_nothing with a failed item)."""


async def batch_leads(call: Call) -> Reply:
    body: LeadBatch = call.body
    me = call.me
    changes = ChangeSet(me.org_id, me.user_id)
    results: list[dict[str, Any]] = []

    async def item(op: str, index: int, run) -> None:
        recorded = len(changes.events)
        try:
            async with conn.transaction():  # a savepoint: a failed item leaves nothing behind
                status, row = await run()
        except ApiError as exc:
            if exc.status >= 500:
                raise
            del changes.events[recorded:]  # their outbox rows went with the savepoint
            error = {"code": exc.code, "message": exc.message, "details": exc.details}
            results.append(
                {
                    "op": op,
                    "index": index,
                    "status": exc.status,
                    "id": None,
                    "lead": None,
                    "error": error,
                    "applied": False,
                }
            )
            return
        lead = lead_out(row).model_dump(mode="json") if row is not None and op != "delete" else None
        results.append(
            {
                "op": op,
                "index": index,
                "status": status,
                "id": str(row["id"]),
                "lead": lead,
                "error": None,
                "applied": True,
            }
        )

    async def load(lead_id: str):
        return await load_visible(
            conn,
            me,
            table="leads",
            record_id=lead_id,
            owner_column="owner_id",
            what="lead",
            for_update=True,
            territory_column="territory",
        )

    def creating(lead):
        return lambda: create_in(conn, call, lead, changes, on_duplicate=body.on_duplicate)

    def updating(update):
        async def run():
            updates = update.model_dump(mode="json", exclude_unset=True, exclude={"id"})
            if "enrichment" in updates and updates["enrichment"] is None:
                updates["enrichment"] = {}
            if not updates:
                raise BadRequest("the item changes nothing", code="empty_update")
            current = await load(str(update.id))
            row, _ = await apply_update(conn, call, current, updates, changes, sorted(updates))
            return 200, row

        return run

    def deleting(lead_id):
        async def run():
            current = await load(str(lead_id))
            await delete_in(conn, me.org_id, current, changes)
            return 204, current

        return run

    applied = True
    async with call.pool.acquire() as conn:
        try:
            async with conn.transaction():
                for index, lead in enumerate(body.create):
                    await item("create", index, creating(lead))
                for index, update in enumerate(body.update):
                    await item("update", index, updating(update))
                for index, lead_id in enumerate(body.delete):
                    await item("delete", index, deleting(lead_id))
                if body.all_or_nothing and any(r["error"] for r in results):
                    raise _RollBack
        except _RollBack:
            applied = False
            for r in results:
                r["applied"] = False
    if applied:
        await changes.publish(call.pool, call.bus)
    failed = sum(1 for r in results if r["error"])
    out = LeadBatchResults(
        applied=applied,
        succeeded=len(results) - failed,
        failed=failed,
        results=[LeadBatchResult.model_validate(r) for r in results],
    )
    return Reply(out)


ENDPOINTS = (
    Endpoint(
        "POST",
        "/api/v1/leads/batch",
        batch_leads,
        "Create, update and delete up to 100 leads at once, with a result per item",
        "leads",
        body=LeadBatch,
        response=LeadBatchResults,
        errors=(400, 401, 403, 413, 422),
    ),
)
