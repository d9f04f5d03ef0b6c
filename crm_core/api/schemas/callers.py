"""Body of GET /api/v1/calls/{id}/caller: who is on the other end of a call, for the rep's screen."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field


class CallerLead(BaseModel):
    id: UUID
    name: str = Field(description="First and last name, as the CRM has them (may be empty).")
    company: str | None
    ai_score: float | None = Field(description="The lead's score, 0..100.")
    grade: str | None = Field(description="A, B, C or D.")
    visible: bool = Field(description="Whether the viewer may open the lead's own record.")


class CallerDeal(BaseModel):
    id: UUID
    name: str
    stage: str
    value: float
    currency: str
    visible: bool = Field(description="Whether the viewer may open the deal's own record.")


class CallerLastCall(BaseModel):
    id: UUID | None = Field(description="Set only when the viewer may open that call.")
    at: datetime = Field(description="When the earlier call started (or was created).")
    duration_s: int | None
    status: str
    with_you: bool = Field(description="Whether the viewer was the rep on it.")


class CallCaller(BaseModel):
    call_id: UUID
    lead: CallerLead | None = Field(description="The lead the call is linked to (by phone number).")
    open_deal: CallerDeal | None = Field(description="The lead's most recently updated open deal.")
    last_call: CallerLastCall | None = Field(description="The lead's call before this one.")
    may_review: bool = Field(description="Whether the viewer may open this call's review.")
