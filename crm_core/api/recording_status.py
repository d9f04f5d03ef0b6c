"""GET /api/v1/calls/{call_id}/recording/status: can this caller play the call's recording, and
if not, why (so the review screen's player says it instead of failing silently).

The answer follows the recording route's own rules (crm_core/recordings/access.py, then the
store and the recording's row), for whoever may see the call; others get 404 as for a missing
call. It streams nothing, so it writes no access-log row.
"""

from __future__ import annotations

from aiohttp import web

from crm_core.api.openapi import ForeignOperation
from crm_core.api.recordings import (
    RECORDING_ACCESS,
    RESOURCE,
    AuthRefused,
    _call_uuid,
    _subject,
    principal_of,
)
from crm_core.api.records import load_visible
from crm_core.api.routes import document_routes
from crm_core.api.schemas.recordings import RecordingStatus
from crm_core.api_context import api_context
from crm_core.api_errors import ApiError, NotFound
from crm_core.recordings import rows
from crm_core.recordings.access import may_listen

LIVE_STATUSES = ("queued", "ringing", "in-progress")

OPERATION = ForeignOperation(
    "GET",
    "/api/v1/calls/{call_id}/recording/status",
    "Whether the caller can play a call's recording, and why not",
    "recordings",
    response=RecordingStatus,
    operation_id="get_call_recording_status",
)

_WHY = {
    "recording_off": "Recording is off on this server: no recording key is loaded, so calls "
    "are not recorded.",
    "not_yet_stored": "The call is still being recorded; the recording is stored when it ends.",
    "not_recorded": "This call was not recorded.",
    "deleted": "The recording was removed (the organization's retention policy or an "
    "erasure request).",
}


def recording_status(row, principal, access, *, call_live: bool = False) -> RecordingStatus:
    """``row``: the call's recording row (``rows.recording_of_call``; ``id`` None when the call
    has none); ``call_live``: the call has not ended (its recording may not have begun)."""
    decision = may_listen(principal, _subject(row, access))
    if not decision.allowed:
        return RecordingStatus(
            available=False,
            reason="not_permitted",
            message=f"You may not listen to this recording: {decision.reason}.",
        )
    if access.store is None and (row["id"] is None or row["status"] != "deleted"):
        reason = "recording_off"
    elif row["id"] is None:
        reason = "not_yet_stored" if call_live else "not_recorded"
    elif row["status"] == "deleted":
        reason = "deleted"
    elif row["status"] == "recording":
        reason = "not_yet_stored"
    else:
        return RecordingStatus(available=True, reason="available", message="")
    return RecordingStatus(available=False, reason=reason, message=_WHY[reason])


async def get_recording_status(request: web.Request) -> web.Response:
    try:
        principal = await principal_of(request, RESOURCE)
    except AuthRefused as rendered:
        return rendered.response
    try:
        call_id = _call_uuid(request)
        async with api_context(request).pool().acquire() as conn:
            call = await load_visible(
                conn,
                principal,
                table="calls",
                record_id=call_id,
                owner_column="rep_id",
                what="call",
            )
            row = await rows.recording_of_call(conn, str(principal.org_id), call_id)
        if row is None:
            raise NotFound("no such call")
    except ApiError as err:
        return err.response()
    status = recording_status(
        row, principal, request.app[RECORDING_ACCESS], call_live=call["status"] in LIVE_STATUSES
    )
    return web.json_response(status.model_dump(mode="json"))


def add_recording_status_route(app: web.Application) -> None:
    app.router.add_get("/api/v1/calls/{call_id}/recording/status", get_recording_status)
    document_routes(app, (OPERATION,))
