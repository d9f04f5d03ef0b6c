"""/api/v1/calls: list and get calls, and read a call's transcript (masked unless allowed)."""

from __future__ import annotations

from crm_core.api.access import visible_clause
from crm_core.api.call_caller import require_review
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
from crm_core.api.schemas.calls import CallRecord, Transcript, TranscriptSegment
from crm_core.calls.masking import mask_pii
from crm_core.calls.records import CALL_STATUSES, list_segments

RAW_TRANSCRIPTS = "transcripts:raw"
# The customer's lines: their own track, or a mixed (Vonage) track's lines labelled as theirs.
_CUSTOMER_SENTIMENT = ("(SELECT avg(s.sentiment) FROM transcript_segments s"
                       " WHERE s.call_id = c.id AND s.org_id = c.org_id"
                       " AND coalesce(s.speaker, s.party) = 'customer' AND s.sentiment IS NOT NULL)")

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
        # from the post-call summary: calls where coaching heard any of these keyword categories
        Filter("keyword", "text",
               "EXISTS (SELECT 1 FROM jsonb_each_text(coalesce(c.summary->'keyword_counts', '{{}}'::jsonb)) k"
               " WHERE k.key = ANY({}) AND k.value ~ '^[0-9]+$' AND k.value::bigint > 0)",
               "Keyword categories heard on the call (e.g. pricing,competitor): any of them.", many=True),
        # mean sentiment (-1..1) of the customer's transcribed speech; calls without any are excluded
        Filter("customer_sentiment_below", "number", f"{_CUSTOMER_SENTIMENT} < {{}}",
               "Customer's mean sentiment (-1..1) below this."),
        Filter("customer_sentiment_above", "number", f"{_CUSTOMER_SENTIMENT} > {{}}",
               "Customer's mean sentiment (-1..1) above this."),
    ),
    sorts=(
        SortKey("created_at", "c.created_at", "timestamptz"),
        SortKey("duration_s", "coalesce(c.duration_s, -1)", "integer"),
    ),
)


async def list_calls(call: Call) -> Reply:
    params = SqlParams()
    base = visible_clause(call.me, params, alias="c", owner_column="rep_id")
    return Reply(await fetch_page(call, CALLS, params, base, table="calls", alias="c",
                                  to_item=lambda r: CallRecord.model_validate(dict(r)).model_dump(mode="json")))


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
        await require_review(conn, call.me, row)
        segments = await list_segments(conn, row["id"], org_id=call.me.org_id)
    out = [
        TranscriptSegment(
            segment_key=s["segment_key"], party=s["party"], speaker=s["speaker"], start_ms=s["start_ms"],
            end_ms=s["end_ms"], text=(s["text_raw"] or s["text"]) if raw else mask_pii(s["text"]),
        )
        for s in segments
    ]
    return Reply(Transcript(call_id=row["id"], masked=not raw, segments=out))


ENDPOINTS = (
    Endpoint("GET", "/api/v1/calls", list_calls, "List calls", "calls", response=CallRecord, paginated=True,
             query=CALLS.query_params()),
    Endpoint("GET", "/api/v1/calls/{id}", get_call, "Get a call", "calls", response=CallRecord),
    Endpoint("GET", "/api/v1/calls/{id}/transcript", get_transcript,
             "A call's transcript; personal data masked without the transcripts:raw permission", "calls",
             response=Transcript),
)
