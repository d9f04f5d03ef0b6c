"""GDPR endpoints for a lead: ``POST /api/v1/leads/{id}/erasure`` and ``GET /api/v1/leads/{id}/export``.

Admins only (a lead out of the caller's reach answers 404, like a missing one; a non-admin
who can see it 403); every request, granted or refused, is audited (the operations
write their own audit rows, refusals are written here).
"""

from __future__ import annotations

import uuid

from aiohttp import web

from crm_core.api.openapi import ForeignOperation
from crm_core.api.recordings import (
    RECORDING_ACCESS,
    AuthRefused,
    RecordingAccess,
    principal_of,
)
from crm_core.api.records import load_visible
from crm_core.api.routes import document_routes
from crm_core.api.schemas.privacy import LeadErasure, LeadExport
from crm_core.api_context import api_context
from crm_core.api_errors import ApiError, Forbidden, NotFound
from crm_core.privacy import LeadNotFound, erase_lead, export_lead
from crm_core.recordings.rows import AuditEntry, write_audit

RAW_TEXT_PERMISSION = "transcripts:raw"
# What API token scopes bound here (crm_core.auth.principal.RESOURCES): export reads, erasure writes.
RESOURCE = "privacy"


OPERATIONS = (
    ForeignOperation("POST", "/api/v1/leads/{lead_id}/erasure",
                     "Erase a lead's personal data: its record, transcripts and recordings (admins; audited)",
                     "gdpr", response=LeadErasure, operation_id="erase_lead"),
    ForeignOperation("GET", "/api/v1/leads/{lead_id}/export",
                     "Everything held about a lead, as one JSON document (admins; audited)",
                     "gdpr", response=LeadExport, operation_id="export_lead"),
)


def add_privacy_routes(app: web.Application, access: RecordingAccess) -> None:
    """Serve a lead's erasure and export; erasure shreds recordings in ``access.store``."""
    app[RECORDING_ACCESS] = access
    app.router.add_post("/api/v1/leads/{lead_id}/erasure", erase)
    app.router.add_get("/api/v1/leads/{lead_id}/export", export)
    document_routes(app, OPERATIONS)


async def _admin_for_lead(request: web.Request, action: str):
    """The admin asking about a lead they can see; 404 for a lead out of reach, 403 for non-admins."""
    principal = await principal_of(request, RESOURCE)
    try:
        lead_id = str(uuid.UUID(request.match_info["lead_id"]))
    except ValueError:
        raise NotFound("no such lead") from None
    async with api_context(request).pool().acquire() as conn:
        refusal: ApiError | None = None
        try:
            # Out of the caller's reach (another organization, another rep's lead) answers like a
            # lead that does not exist; only then does the role decide.
            await load_visible(conn, principal, table="leads", record_id=lead_id, owner_column="owner_id",
                               territory_column="territory", what="lead")
        except NotFound as exc:
            refusal = exc
        if refusal is None and principal.role != "admin":
            refusal = Forbidden("only admins may erase or export a lead's data")
        if refusal is not None:
            await write_audit(
                conn,
                AuditEntry(
                    org_id=str(principal.org_id),
                    action=action,
                    resource_type="lead",
                    resource_id=lead_id,
                    outcome="denied",
                    actor_id=str(principal.user_id),
                    ip=request.remote,
                    request_id=api_context(request).request_id(),
                    detail={"role": principal.role, "reason": refusal.code},
                ),
            )
            raise refusal
    return principal, lead_id


async def erase(request: web.Request) -> web.Response:
    try:
        principal, lead_id = await _admin_for_lead(request, "lead.erased")
        store = request.app[RECORDING_ACCESS].store
        async with api_context(request).pool().acquire() as conn:
            result = await erase_lead(
                conn,
                store,
                str(principal.org_id),
                lead_id,
                actor_id=str(principal.user_id),
                ip=request.remote,
                request_id=api_context(request).request_id(),
            )
    except AuthRefused as rendered:
        return rendered.response
    except ApiError as err:
        return err.response()
    except LeadNotFound:
        return NotFound("no such lead").response()
    return web.json_response(LeadErasure.model_validate(result, from_attributes=True).model_dump(mode="json"))


async def export(request: web.Request) -> web.Response:
    try:
        principal, lead_id = await _admin_for_lead(request, "lead.exported")
        async with api_context(request).pool().acquire() as conn:
            data = await export_lead(
                conn,
                str(principal.org_id),
                lead_id,
                include_raw_text=RAW_TEXT_PERMISSION in principal.permissions,
                actor_id=str(principal.user_id),
                ip=request.remote,
                request_id=api_context(request).request_id(),
            )
    except AuthRefused as rendered:
        return rendered.response
    except ApiError as err:
        return err.response()
    except LeadNotFound:
        return NotFound("no such lead").response()
    return web.json_response(
        data,
        headers={
            "Content-Disposition": f'attachment; filename="lead-{lead_id}.json"',
            "Cache-Control": "no-store",
        },
    )
