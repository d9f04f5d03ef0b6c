"""/api/v1/calls: list and get calls, place outbound calls, and read a call's transcript
(masked unless allowed)."""

from __future__ import annotations

import logging

from crm_core.api.access import visible_clause
from crm_core.api.endpoint import Call, Endpoint, Reply
from crm_core.api.listing import (
    Collection,
    Filter,
    SortKey,
    SqlParams,
    page_result,
    plan_page,
    select_page_sql,
)
from crm_core.api.models import CallRecord, OutboundCallCreate, Transcript, TranscriptSegment
from crm_core.api.records import load_visible
from crm_core.api_context import OUTBOUND_DIALER
from crm_core.api_errors import BadGateway, ServiceUnavailable, Unprocessable
from crm_core.calls import CALL_STATUSES, NewCall, create_call, list_segments, update_call_status
from crm_core.changes import ChangeSet
from crm_core.dialing import DialerError, OutboundCallRequest
from crm_core.transcript_masking import mask_pii

log = logging.getLogger(__name__)

RAW_TRANSCRIPTS = "transcripts:raw"

CALLS = Collection(
    filters=(
        Filter("status", "enum", "c.status = ANY({})", "Call status.", many=True, choices=tuple(sorted(CALL_STATUSES))),
        Filter("direction", "enum", "c.direction = {}", "Direction.", choices=("inbound", "outbound")),
        Filter("carrier", "enum", "c.carrier = {}", "Carrier.", choices=("twilio", "vonage", "sip", "simulator")),
        Filter("rep_id", "uuid", "c.rep_id = ANY({}::uuid[])", "The rep on the call.", many=True),
        Filter("lead_id", "uuid", "c.lead_id = {}::uuid", "The lead called."),
        Filter("deal_id", "uuid", "c.deal_id = {}::uuid", "The deal the call belongs to."),
        Filter("created_after", "datetime", "c.created_at >= {}", "Created at or after."),
        Filter("created_before", "datetime", "c.created_at < {}", "Created before."),
    ),
    sorts=(
        SortKey("created_at", "c.created_at", "timestamptz"),
        SortKey("duration_s", "coalesce(c.duration_s, -1)", "integer"),
    ),
)


async def list_calls(call: Call) -> Reply:
    ctx = call.context.options
    params = SqlParams()
    base = visible_clause(call.me, params, alias="c", owner_column="rep_id")
    page = plan_page(CALLS, call.request.query, params, alias="c",
                     default_limit=ctx.page_size_default, max_limit=ctx.page_size_max)
    sql = select_page_sql(page, table="calls", alias="c", base_where=base, params=params)
    async with call.pool.acquire() as conn:
        rows = await conn.fetch(sql, *params.values)
    return Reply(page_result(page, rows, lambda r: CallRecord.model_validate(dict(r)).model_dump(mode="json")))


async def get_call(call: Call) -> Reply:
    async with call.pool.acquire() as conn:
        row = await load_visible(conn, call.me, table="calls", record_id=call.path_id(),
                                 owner_column="rep_id", what="call")
    return Reply(CallRecord.model_validate(dict(row)))


async def get_transcript(call: Call) -> Reply:
    raw = call.me.has(RAW_TRANSCRIPTS)
    async with call.pool.acquire() as conn:
        row = await load_visible(conn, call.me, table="calls", record_id=call.path_id(),
                                 owner_column="rep_id", what="call")
        segments = await list_segments(conn, row["id"])
    out = [
        TranscriptSegment(
            segment_key=s["segment_key"], party=s["party"], speaker=s["speaker"], start_ms=s["start_ms"],
            end_ms=s["end_ms"], text=(s["text_raw"] or s["text"]) if raw else mask_pii(s["text"]),
        )
        for s in segments
    ]
    return Reply(Transcript(call_id=row["id"], masked=not raw, segments=out))


async def place_outbound_call(call: Call) -> Reply:
    """Record the attempt, then ask the carrier edge to dial; the caller is the rep on the call."""
    body: OutboundCallCreate = call.body
    me = call.me
    dialer = call.request.config_dict.get(OUTBOUND_DIALER)
    if dialer is None:
        raise ServiceUnavailable("this node cannot place outbound calls (no carrier configured)",
                                 code="dialing_unavailable")
    carriers = sorted(dialer.carriers)
    carrier = body.carrier or (carriers[0] if carriers else None)
    if carrier not in carriers:
        raise Unprocessable(f"cannot dial with {carrier!r}", {"carriers": carriers}, code="unknown_carrier")
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn:
        async with conn.transaction():
            lead_id = deal_id = None
            if body.lead_id is not None:
                lead = await load_visible(conn, me, table="leads", record_id=str(body.lead_id),
                                          owner_column="owner_id", what="lead", territory_column="territory")
                lead_id = str(lead["id"])
            if body.deal_id is not None:
                deal = await load_visible(conn, me, table="deals", record_id=str(body.deal_id),
                                          owner_column="owner_id", what="deal")
                deal_id = str(deal["id"])
            row = await create_call(conn, NewCall(
                org_id=me.org_id, carrier=carrier, direction="outbound", from_number=body.from_number,
                to_number=body.to_number, rep_id=me.user_id, lead_id=lead_id, deal_id=deal_id,
            ))
            if lead_id or deal_id:
                await conn.execute(
                    """
                    INSERT INTO activities (org_id, kind, subject_type, subject_id, lead_id, deal_id, call_id,
                                            actor_id, body)
                    VALUES ($1, 'call', $2, $3, $4, $5, $6, $7, $8)
                    """,
                    me.org_id, "deal" if deal_id else "lead", deal_id or lead_id, lead_id, deal_id, row["id"],
                    me.user_id, {"direction": "outbound", "to_number": body.to_number},
                )
            await changes.record(conn, action="call.place", resource_type="call", resource_id=str(row["id"]),
                                 after=CallRecord.model_validate(dict(row)).model_dump(mode="json"),
                                 event_type="crm.call.placed")
        await changes.publish(call.pool, call.bus)
        request = OutboundCallRequest(org_id=me.org_id, call_id=str(row["id"]), carrier=carrier,
                                      to_number=body.to_number, from_number=body.from_number,
                                      rep_id=me.user_id, lead_id=lead_id, deal_id=deal_id)
        try:
            placed = await dialer.place_call(request)
        except DialerError as exc:
            await update_call_status(conn, row["id"], "failed")
            raise BadGateway(f"the carrier did not place the call: {exc}", {"call_id": str(row["id"])}) from None
        await conn.execute("UPDATE calls SET external_id = $2, updated_at = now() WHERE id = $1",
                           row["id"], placed.external_id)
        row = await update_call_status(conn, row["id"], placed.status) if placed.status in CALL_STATUSES \
            else await conn.fetchrow("SELECT * FROM calls WHERE id = $1", row["id"])
    return Reply(CallRecord.model_validate(dict(row)), 201, headers={"Location": f"/api/v1/calls/{row['id']}"})


ENDPOINTS = (
    Endpoint("GET", "/api/v1/calls", list_calls, "List calls", "calls", response=CallRecord, paginated=True,
             query=CALLS.query_params()),
    Endpoint("POST", "/api/v1/calls/outbound", place_outbound_call,
             "Place an outbound call as yourself (use Idempotency-Key: retries must not dial twice)", "calls",
             body=OutboundCallCreate, response=CallRecord, status=201,
             errors=(400, 401, 403, 404, 409, 413, 422, 502, 503)),
    Endpoint("GET", "/api/v1/calls/{id}", get_call, "Get a call", "calls", response=CallRecord),
    Endpoint("GET", "/api/v1/calls/{id}/transcript", get_transcript,
             "A call's transcript; personal data masked without the transcripts:raw permission", "calls",
             response=Transcript),
)
