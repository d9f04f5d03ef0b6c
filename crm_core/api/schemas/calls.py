"""Bodies of /api/v1/calls: call records, outbound calls and transcripts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from crm_core.api.schemas.common import Input, Output


class CallRecord(Output):
    id: UUID
    carrier: str
    direction: Literal["inbound", "outbound"]
    external_id: str | None
    from_number: str | None
    to_number: str | None
    rep_id: UUID | None
    lead_id: UUID | None
    deal_id: UUID | None
    status: str
    ended_abnormally: bool
    started_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: int | None
    created_at: datetime


class SnippetPart(BaseModel):
    text: str
    hit: bool = Field(description="True for the words that matched the query.")


class SearchMatch(BaseModel):
    segment_key: str
    party: Literal["rep", "customer", "mixed"]
    speaker: str | None
    start_ms: int = Field(description="Where the segment starts on the call clock (the recording's time).")
    end_ms: int
    snippet: list[SnippetPart] = Field(description="The segment's best fragments, hits marked.")
    snippet_html: str = Field(
        description="The same snippet as HTML: the text escaped, hits in <mark>; no other markup.")


class CallSearch(BaseModel):
    rank: float = Field(description="Sum of ts_rank over the call's matching segments (6 decimals).")
    matched_segments: int
    matches: list[SearchMatch] = Field(description="The best matching segments (up to 3), in call order.")


class CallListItem(CallRecord):
    search: CallSearch | None = Field(None, description="Only with q=: how the call matched the search.",
                                      examples=[{"rank": 0.1216, "matched_segments": 2, "matches": [{
                                          "segment_key": "customer-4", "party": "customer", "speaker": None,
                                          "start_ms": 4000, "end_ms": 7000,
                                          "snippet": [{"text": "Honestly the ", "hit": False},
                                                      {"text": "renewal", "hit": True},
                                                      {"text": " is what we need", "hit": False}],
                                          "snippet_html": "Honestly the <mark>renewal</mark> is what we need"}]}])


_E164 = r"^\+[1-9][0-9]{6,14}$"


class OutboundCallCreate(Input):
    carrier: Literal["twilio", "vonage", "sip"] = Field(
        description="The carrier to dial through; it must be configured on the server.")
    to_number: str | None = Field(None, pattern=_E164,
                                  description="E.164 number to call; defaults to the lead's phone.")
    lead_id: UUID | None = None
    deal_id: UUID | None = None
    rep_id: UUID | None = Field(None, description="The rep placing the call; defaults to the caller.")
    from_number: str | None = Field(None, pattern=_E164,
                                    description="Caller id; defaults to the carrier's configured number.")


class TranscriptSegment(BaseModel):
    segment_key: str
    party: Literal["rep", "customer", "mixed"]
    speaker: str | None
    start_ms: int
    end_ms: int
    text: str


class Transcript(BaseModel):
    call_id: UUID
    masked: bool = Field(description="True when personal data in the text is masked.")
    segments: list[TranscriptSegment]
