"""Manager review of recordings: ``GET /api/v1/calls/{id}/recording`` (+ ``/audit``).

The recording is decrypted while it streams, as a WAV file (stereo: rep
left, customer right, when the parties were recorded apart), and honours
HTTP Range requests so a browser ``<audio>`` element can seek: only the
chunks a range touches are decrypted. Every request — granted, refused,
or failed — writes an ``audit_log`` row with the user, time, IP and byte range.

The node that records calls hands the routes a ``RecordingAccess``: the
encrypted store it records into (none while no recording key is loaded: the
routes answer 503) and its default for reps replaying their own calls.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from crm_core.api.endpoint import QueryParam
from crm_core.api.openapi import ForeignOperation
from crm_core.api.records import load_visible
from crm_core.api.routes import document_routes
from crm_core.api.schemas.recordings import RecordingAccessEntry
from crm_core.api_context import api_context
from crm_core.api_errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    ServerError,
    ServiceUnavailable,
)
from crm_core.auth import Principal, authenticate
from crm_core.orgs import reps_review_own_calls
from crm_core.recordings import rows
from crm_core.recordings.access import RecordingSubject, may_listen, may_read_audit
from storage.keys import KeyUnwrapError, UnknownKeyError
from storage.recording_store import (
    AudioFormat,
    RecordingError,
    RecordingNotFound,
    RecordingReader,
    RecordingStore,
    RecordingTruncatedError,
)

log = logging.getLogger(__name__)

# (request, resource, *, allow_query_token) -> the caller, its API token's scopes checked for
# ``resource``; the query token only for the audio itself.
Authenticate = Callable[..., Awaitable[Principal]]
AUTHENTICATE = web.AppKey("recording_authenticate", object)
WAV_HEADER_LEN = 44
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
# What API token scopes bound here (crm_core.auth.principal.RESOURCES).
RESOURCE = "recordings"


async def _crm_authenticate(
    request: web.Request, resource: str, *, allow_query_token: bool = False
) -> Principal:
    # <audio> cannot send headers, so for the audio the short-lived access token may come in the
    # query string; nothing else here (JSON, GDPR exports, erasure) takes one.
    return await authenticate(request, allow_query_token=allow_query_token, resource=resource)


_QUERY_TOKEN = QueryParam("access_token", {"type": "string"},
                          "A short-lived access token (cla_…), for <audio> elements that cannot send headers.")
OPERATIONS = (
    ForeignOperation(
        "GET", "/api/v1/calls/{call_id}/recording",
        "A call's recording as WAV (rep left, customer right when recorded apart); Range requests "
        "seek; every request is in the access log", "recordings",
        media_type="audio/wav", other_responses=((206, "The byte range asked for"),),
        query=(_QUERY_TOKEN,),
        headers=(QueryParam("Range", {"type": "string"}, "One byte range, e.g. bytes=44-"),),
        errors=(401, 403, 404, 409, 500, 503), empty_errors=(416,), operation_id="get_call_recording"),
    ForeignOperation(
        "GET", "/api/v1/calls/{call_id}/recording/audit",
        "Who listened to a call's recording, newest first (the newest 200 entries)", "recordings",
        response=RecordingAccessEntry, paginated=True,
        operation_id="get_call_recording_audit"),
)


@dataclass(slots=True)
class RecordingAccess:
    """What the recording and GDPR routes need from the node that records calls."""

    # The store calls are recorded into; None while no recording key is loaded (recording off).
    store: RecordingStore | None = None
    # Whether reps may replay their own calls where their organization's settings do not say.
    reps_review_own_default: bool = False


RECORDING_ACCESS = web.AppKey("crm_recording_access", RecordingAccess)


def add_recording_routes(
    app: web.Application, access: RecordingAccess, authenticate: Authenticate | None = None
) -> None:
    """Serve a call's recording and its access log; ``access.store`` may be set after this call."""
    app[RECORDING_ACCESS] = access
    app[AUTHENTICATE] = authenticate or _crm_authenticate
    app.router.add_get("/api/v1/calls/{call_id}/recording", play_recording)
    app.router.add_get("/api/v1/calls/{call_id}/recording/audit", recording_audit)
    document_routes(app, OPERATIONS)


def wav_header(audio: AudioFormat, data_len: int) -> bytes:
    """A canonical 44-byte RIFF/WAVE PCM header."""
    block_align = audio.channels * audio.sample_width
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_len)
        + b"WAVE"
        + b"fmt "
        + struct.pack(
            "<IHHIIHH",
            16,
            1,
            audio.channels,
            audio.sample_rate,
            audio.sample_rate * block_align,
            block_align,
            8 * audio.sample_width,
        )
        + b"data"
        + struct.pack("<I", data_len)
    )


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end - 1}"


def parse_range(header: str | None, total: int) -> ByteRange | None:
    """The single range asked for, or None for the whole body; ValueError when unsatisfiable.

    Malformed and multi-range headers are ignored (RFC 9110 lets a server answer 200).
    """
    if not header:
        return None
    match = _RANGE_RE.match(header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0:
            raise ValueError("empty suffix range")
        return ByteRange(max(0, total - n), total)
    start = int(first)
    end = total if last == "" else min(int(last) + 1, total)
    if start >= total or (last != "" and int(last) < start):
        raise ValueError("range starts past the end")
    return ByteRange(start, end)


async def principal_of(request: web.Request, resource: str, *, media: bool = False) -> Principal:
    """The caller (crm_core.auth), its scopes allowing ``resource``; a refusal is audited, then
    answered.

    ``media``: the request fetches audio, whose ``?access_token=`` is honoured (GET only).
    Anonymous refusals are aggregated per source and minute (``write_anonymous_denial``), so a
    flood of them cannot grow the audit log without bound.
    """
    try:
        principal = await request.app[AUTHENTICATE](request, resource, allow_query_token=media)
    except ApiError as exc:
        try:
            async with api_context(request).pool().acquire() as conn:
                lead_id = request.match_info.get("lead_id")
                await rows.write_anonymous_denial(
                    conn,
                    rows.AuditEntry(
                        org_id=None,
                        actor_id=None,
                        actor_kind="user",
                        action="recording.play"
                        if request.path.endswith("/recording")
                        else "api.request",
                        resource_type="lead" if lead_id else "recording",
                        resource_id=lead_id or request.match_info.get("call_id"),
                        outcome="denied",
                        ip=request.remote,
                        request_id=api_context(request).request_id(),
                        detail={"reason": exc.code, "range": request.headers.get("Range")},
                    ),
                )
        except (asyncpg.PostgresError, OSError):
            log.error("could not audit a refused unauthenticated request")
        raise AuthRefused(exc.response()) from None
    # The CRM API's per-organisation rate limit covers these /api/v1 routes too (429, error shape).
    context = api_context(request)
    if context.after_authenticate is not None:
        await context.after_authenticate(request, principal)
    return principal


class AuthRefused(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


def _call_uuid(request: web.Request) -> str:
    call_id = request.match_info["call_id"]
    try:
        return str(uuid.UUID(call_id))
    except ValueError:
        raise NotFound("no such call") from None


async def _audit(
    request: web.Request, principal, call_id: str, action: str, outcome: str, **detail
) -> None:
    try:
        async with api_context(request).pool().acquire() as conn:
            await rows.write_audit(
                conn,
                rows.AuditEntry(
                    org_id=str(principal.org_id),
                    actor_id=str(principal.user_id),
                    action=action,
                    resource_id=call_id,
                    outcome=outcome,
                    ip=request.remote,
                    request_id=api_context(request).request_id(),
                    detail={"role": principal.role, **detail},
                ),
            )
    except (asyncpg.PostgresError, OSError) as exc:
        # Never serve audio whose access could not be recorded.
        log.error("could not write recording audit row: %s", exc)
        raise ServiceUnavailable(
            "the access log cannot be written; try again", code="audit_unavailable"
        ) from None


def _subject(row, access: RecordingAccess) -> RecordingSubject:
    org = row["org_settings"] or {}
    return RecordingSubject(
        org_id=str(row["call_org_id"]),
        rep_id=str(row["rep_id"]) if row["rep_id"] else None,
        rep_team_id=str(row["rep_team_id"]) if row["rep_team_id"] else None,
        # a rep replays their own calls only where they may review them at all
        reps_review_own=bool(
            org.get("reps_review_own_recordings", access.reps_review_own_default)
        )
        and reps_review_own_calls(org),
    )


async def _visible_call_recording(conn, principal: Principal, call_id: str):
    """The call's recording row if the caller may see the call, else 404 (like a missing call).

    Seeing the call is the API's one ownership rule (``load_visible``): a caller who cannot
    see it learns nothing about it, not even that a refusal would follow.
    """
    await load_visible(conn, principal, table="calls", record_id=call_id, owner_column="rep_id",
                       what="call")
    return await rows.recording_of_call(conn, str(principal.org_id), call_id)


async def play_recording(request: web.Request) -> web.StreamResponse:
    try:
        principal = await principal_of(request, RESOURCE, media=True)
    except AuthRefused as rendered:
        return rendered.response
    range_header = request.headers.get("Range")
    call_id = None
    try:
        call_id = _call_uuid(request)
        async with api_context(request).pool().acquire() as conn:
            row = await _visible_call_recording(conn, principal, call_id)
        if row is None:
            raise NotFound("no such call")
        decision = may_listen(principal, _subject(row, request.app[RECORDING_ACCESS]))
        if not decision.allowed:
            await _audit(
                request,
                principal,
                call_id,
                "recording.play",
                "denied",
                reason=decision.reason,
                range=range_header,
            )
            raise Forbidden(f"you may not listen to this recording: {decision.reason}")
        if row["id"] is None or row["status"] == "deleted":
            raise NotFound("this call has no recording")
        if row["status"] == "recording":
            raise Conflict("the call is still being recorded", code="recording_in_progress")
        reader = await _open_reader(request, row)
    except ApiError as err:
        if err.status != 403 and call_id is not None:
            await _audit_quietly(request, principal, call_id, err, range_header)
        return err.response()
    try:
        return await _stream(request, principal, call_id, row, reader, range_header)
    finally:
        reader.close()


async def _audit_quietly(request, principal, call_id, err: ApiError, range_header) -> None:
    try:
        await _audit(
            request,
            principal,
            call_id,
            "recording.play",
            "denied" if err.status == 404 else "error",
            reason=err.code,
            range=range_header,
        )
    except ApiError:
        pass


async def _open_reader(request: web.Request, row) -> RecordingReader:
    store = request.app[RECORDING_ACCESS].store
    if store is None:
        raise ServiceUnavailable(
            "recording keys are not configured on this node", code="recordings_unavailable"
        )
    rid = row["id"]
    try:
        try:
            return await asyncio.to_thread(store.open, rid)
        except RecordingTruncatedError:
            if row["status"] != "incomplete":
                raise
            # Marked incomplete but never sealed (recovery stopped between the two): seal now.
            await asyncio.to_thread(store.seal, rid)
            return await asyncio.to_thread(store.open, rid)
    except RecordingNotFound:
        raise NotFound("the recording's file is missing") from None
    except (UnknownKeyError, KeyUnwrapError) as exc:
        log.error("recording %s: %s", rid, exc)
        raise ServiceUnavailable(
            "the key of this recording is not loaded", code="recording_key_unavailable"
        ) from None
    except RecordingError as exc:
        log.error("recording %s failed its integrity check: %s", rid, exc)
        raise ServerError(
            "the recording failed its integrity check", code="recording_corrupt"
        ) from None


async def _stream(
    request, principal, call_id, row, reader: RecordingReader, range_header
) -> web.StreamResponse:
    header = wav_header(reader.audio, reader.length)
    total = WAV_HEADER_LEN + reader.length
    try:
        wanted = parse_range(range_header, total)
    except ValueError:
        await _audit(
            request,
            principal,
            call_id,
            "recording.play",
            "error",
            reason="range_not_satisfiable",
            range=range_header,
            recording_id=str(row["id"]),
        )
        return web.Response(
            status=416, headers={"Content-Range": f"bytes */{total}", "Accept-Ranges": "bytes"}
        )
    span = wanted or ByteRange(0, total)
    await _audit(
        request,
        principal,
        call_id,
        "recording.play",
        "ok",
        range=range_header,
        recording_id=str(row["id"]),
        bytes=[span.start, span.end - 1] if span.end > span.start else [],
        status=206 if wanted else 200,
    )
    response = web.StreamResponse(
        status=206 if wanted else 200,
        headers={
            "Content-Type": "audio/wav",
            "Accept-Ranges": "bytes",
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'inline; filename="call-{call_id}.wav"',
        },
    )
    response.content_length = span.end - span.start
    if wanted:
        response.headers["Content-Range"] = f"{wanted.content_range}/{total}"
    await response.prepare(request)
    if request.method == "HEAD":
        return response
    if span.start < WAV_HEADER_LEN:
        await response.write(header[span.start : min(span.end, WAV_HEADER_LEN)])
    if span.end > WAV_HEADER_LEN:
        pieces = reader.read_range(max(0, span.start - WAV_HEADER_LEN), span.end - WAV_HEADER_LEN)
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            await response.write(piece)
    await response.write_eof()
    return response


async def recording_audit(request: web.Request) -> web.Response:
    try:
        principal = await principal_of(request, RESOURCE)
    except AuthRefused as rendered:
        return rendered.response
    try:
        call_id = _call_uuid(request)
        async with api_context(request).pool().acquire() as conn:
            row = await _visible_call_recording(conn, principal, call_id)
            if row is None:
                raise NotFound("no such call")
            decision = may_read_audit(principal, _subject(row, request.app[RECORDING_ACCESS]))
            if not decision.allowed:
                raise Forbidden(f"you may not read this access log: {decision.reason}")
            entries = await rows.recording_audit(conn, str(principal.org_id), call_id)
    except ApiError as err:
        return err.response()
    return web.json_response(
        {
            "data": [RecordingAccessEntry.model_validate(dict(e)).model_dump(mode="json") for e in entries],
            # The API's list shape; the newest 200 entries are one page.
            "next_cursor": None,
        }
    )
