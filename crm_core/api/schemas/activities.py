"""Bodies of /api/v1/activities: the timeline of leads and deals, and notes added to it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import ConfigDict, Field, model_validator

from crm_core.api.schemas.common import Input, Output


class ActivityCreate(Input):
    # the rule of _one_subject below, in the document: exactly one of them, not null
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": [name], "properties": {name: {"type": "string", "format": "uuid"}}}
        for name in ("lead_id", "deal_id")]})

    kind: Literal["note", "email", "meeting", "task"] = "note"
    lead_id: UUID | None = None
    deal_id: UUID | None = None
    text: str = Field(min_length=1, max_length=20_000)
    occurred_at: datetime | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> ActivityCreate:
        if (self.lead_id is None) == (self.deal_id is None):
            raise ValueError("give exactly one of lead_id or deal_id")
        return self


class Activity(Output):
    id: UUID
    kind: str
    subject_type: Literal["lead", "deal", "call"]
    subject_id: UUID
    lead_id: UUID | None
    deal_id: UUID | None
    call_id: UUID | None
    actor_id: UUID | None
    body: dict[str, Any]
    occurred_at: datetime
    created_at: datetime
