"""GET /api/v1/calls/{id}/prompts: the coaching prompts the rep saw during a call, in call time.

Reach is the call's (like its transcript); the cards' text is masked like the
transcript unless the caller holds ``transcripts:raw`` (a keyword card quotes
what was said).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from crm_core.api.call_caller import require_review
from crm_core.api.calls import RAW_TRANSCRIPTS
from crm_core.api.endpoint import Endpoint
from crm_core.api.listing import Collection, Filter, SortKey, SqlParams, fetch_page
from crm_core.api.records import load_visible
from crm_core.api.reply import Call, Reply
from crm_core.calls.masking import mask_pii


class CallPrompt(BaseModel):
    id: UUID
    call_id: UUID
    at_ms: int = Field(description="When the prompt fired, in ms on the call clock (the recording's time).")
    rule_id: str = Field(description="The coaching rule that fired.")
    kind: str = Field(description="The rule's trigger: keyword, metric, sentiment, silence or checklist.")
    severity: str
    title: str
    body: str
    party: str | None = Field(description="The party whose words or metrics set it off, when known.")
    segment_key: str | None = Field(
        description="The transcript segment (its segment_key) that set it off; none for clock prompts.")
    evidence: list[str]
    link: str | None = Field(description="A battlecard link shown on the card.")


PROMPTS = Collection(
    filters=(
        Filter("kind", "enum", "p.kind = {}", "The rule's trigger.",
               choices=("keyword", "metric", "sentiment", "silence", "checklist")),
        Filter("severity", "enum", "p.severity = {}", "Severity.", choices=("info", "warning", "critical")),
    ),
    sorts=(SortKey("at_ms", "p.at_ms", "integer"),),
    default_sort="at_ms",
)


def _item(row: Any, raw: bool) -> dict[str, Any]:
    shown = (lambda s: s) if raw else mask_pii
    return CallPrompt(
        id=row["id"], call_id=row["call_id"], at_ms=row["at_ms"], rule_id=row["rule_id"],
        kind=row["kind"], severity=row["severity"], title=shown(row["title"]), body=shown(row["body"]),
        party=row["party"], segment_key=row["segment_key"],
        evidence=[shown(e) for e in row["evidence"] or []], link=row["link"],
    ).model_dump(mode="json")


async def list_call_prompts(call: Call) -> Reply:
    raw = call.me.has(RAW_TRANSCRIPTS)
    async with call.pool.acquire() as conn:
        row = await load_visible(conn, call.me, table="calls", record_id=call.path_id(),
                                 owner_column="rep_id", what="call")
        await require_review(conn, call.me, row)
    params = SqlParams()
    base = [f"p.call_id = {params.add(row['id'])}", f"p.org_id = {params.add(call.me.org_id)}"]
    return Reply(await fetch_page(call, PROMPTS, params, base, table="call_prompts", alias="p",
                                  to_item=lambda r: _item(r, raw)))


ENDPOINTS = (
    Endpoint("GET", "/api/v1/calls/{id}/prompts", list_call_prompts,
             "The coaching prompts the rep saw during a call, in call-clock order", "calls",
             response=CallPrompt, paginated=True, query=PROMPTS.query_params()),
)
