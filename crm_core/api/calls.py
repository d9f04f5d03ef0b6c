"""/api/v1/calls: list, filter and search calls, get one, and read its transcript (masked unless allowed)."""

from __future__ import annotations

import dataclasses

from multidict import MultiDict

from crm_core.api import call_search
from crm_core.api.access import visible_clause
from crm_core.api.call_caller import require_review
from crm_core.api.endpoint import Endpoint, QueryParam
from crm_core.api.listing import (
    Collection,
    Filter,
    SortKey,
    SqlParams,
    fetch_page,
)
from crm_core.api.records import load_visible
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.calls import CallListItem, CallRecord, Transcript, TranscriptSegment
from crm_core.api_errors import BadRequest
from crm_core.calls.masking import mask_pii
from crm_core.calls.records import CALL_STATUSES, list_segments

RAW_TRANSCRIPTS = "transcripts:raw"
# The customer's lines: their own track, or a mixed (Vonage) track's lines labelled as theirs.
_CUSTOMER_SENTIMENT = ("(SELECT avg(s.sentiment) FROM transcript_segments s"
                       " WHERE s.call_id = c.id AND s.org_id = c.org_id"
                       " AND coalesce(s.speaker, s.party) = 'customer' AND s.sentiment IS NOT NULL)")
# A list the post-call summary holds (competitors, checklist_missed); [] when absent or not a list.
def _summary_list(key: str) -> str:
    return (f"(CASE WHEN jsonb_typeof(c.summary->'{key}') = 'array' THEN c.summary->'{key}'"
            " ELSE '[]'::jsonb END)")

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
        Filter("team_id", "uuid",
               "c.rep_id IN (SELECT tu.id FROM users tu WHERE tu.org_id = c.org_id"
               " AND tu.team_id = ANY({}::uuid[]))",
               "Calls of the members of these teams.", many=True),
        Filter("duration_min_s", "int", "c.duration_s >= {}", "Lasted at least this many seconds."),
        Filter("duration_max_s", "int", "c.duration_s <= {}", "Lasted at most this many seconds."),
        # from the post-call summary: the competitors coaching heard named, compared without case
        Filter("competitor", "text",
               f"EXISTS (SELECT 1 FROM jsonb_array_elements_text({_summary_list('competitors')}) k"
               " WHERE lower(k) = ANY(SELECT lower(v) FROM unnest({}::text[]) v))",
               "Competitors named on the call (e.g. Gong): any of them.", many=True),
        # from the post-call summary: the checklist rules (their ids) the rep had not done by the end
        Filter("checklist_missed", "text", f"{_summary_list('checklist_missed')} ?| {{}}::text[]",
               "Calls that ended with any of these checklist items (rule ids) not done.", many=True),
        Filter("checklist_complete", "bool",
               f"(c.summary IS NOT NULL AND (jsonb_array_length({_summary_list('checklist_missed')}) = 0) = {{}})",
               "true: summarised calls with every checklist item done; false: with at least one missed."),
    ),
    sorts=(
        SortKey("created_at", "c.created_at", "timestamptz"),
        SortKey("duration_s", "coalesce(c.duration_s, -1)", "integer"),
        # only with q= (a search): see list_calls
        SortKey("rank", "c.search_rank", "numeric"),
    ),
)
# With q=, the best matches first; ties (and equal ranks) newest id first.
RANKED_CALLS = dataclasses.replace(CALLS, default_sort="-rank")
SEARCH_PARAM = QueryParam(
    "q", {"type": "string", "minLength": 1, "maxLength": call_search.MAX_QUERY_CHARS},
    "Full-text search in the transcripts (web-search syntax: words, \"a phrase\", or, -word). "
    "Only calls with a matching segment are listed, best rank first (sort=-rank, the default with q); "
    "each item's `search` names its best matching segments with their start time and a highlighted "
    "snippet. Without transcripts:raw the query and the snippets are masked like the transcript.")


def _list_item(row) -> dict:
    return CallListItem.model_validate(dict(row)).model_dump(mode="json", exclude={"search"})


async def list_calls(call: Call) -> Reply:
    """The calls in the caller's reach, filtered; with ``q``, only those whose transcript matches,
    ranked (``crm_core.api.call_search``)."""
    query = call.request.query
    if "q" not in query:
        if query.get("sort", "").lstrip("-") == "rank":
            raise BadRequest("sort=rank orders a search: give q", code="invalid_sort")
        params = SqlParams()
        base = visible_clause(call.me, params, alias="c", owner_column="rep_id")
        return Reply(await fetch_page(call, CALLS, params, base, table="calls", alias="c", to_item=_list_item))
    values = query.getall("q")
    if len(values) > 1:
        raise BadRequest("give q once", code="invalid_query")
    raw = call.me.has(RAW_TRANSCRIPTS)
    async with call.pool.acquire() as conn:
        text = await call_search.parse_query(conn, values[0], may_read_raw=raw)
    params = SqlParams()
    q_param = params.add(text)
    base = visible_clause(call.me, params, alias="c", owner_column="rep_id")
    table = call_search.ranked_calls_sql(q_param, params.add(call.me.org_id))

    def to_item(row) -> dict:
        item = _list_item(row)
        item["search"] = {"rank": float(row["search_rank"]), "matched_segments": row["matched_segments"],
                          "matches": []}
        return item

    async def finish(items: list[dict]) -> list[dict]:
        async with call.pool.acquire() as conn:
            found = await call_search.best_matches(conn, call.me.org_id, [i["id"] for i in items], text,
                                                   may_read_raw=raw)
        for item in items:
            item["search"]["matches"] = found.get(item["id"], [])
        return items

    rest = MultiDict((k, v) for k, v in query.items() if k != "q")
    return Reply(await fetch_page(call, RANKED_CALLS, params, base, table=table, alias="c", to_item=to_item,
                                  finish=finish, query=rest))


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
    Endpoint("GET", "/api/v1/calls", list_calls, "List, filter and search calls", "calls", response=CallListItem,
             paginated=True, query=(SEARCH_PARAM, *CALLS.query_params())),
    Endpoint("GET", "/api/v1/calls/{id}", get_call, "Get a call", "calls", response=CallRecord),
    Endpoint("GET", "/api/v1/calls/{id}/transcript", get_transcript,
             "A call's transcript; personal data masked without the transcripts:raw permission", "calls",
             response=Transcript),
)
