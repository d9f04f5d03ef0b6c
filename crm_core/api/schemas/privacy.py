"""Bodies of a lead's GDPR erasure and export (/api/v1/leads/{id}/erasure, /export)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


class LeadErasure(BaseModel):
    lead_id: UUID
    calls: int = Field(description="Calls of the lead whose personal data was erased.")
    recordings_shredded: int
    segments_deleted: int


class LeadExport(BaseModel):
    """Everything held about a lead (GDPR access request); raw transcript text only with transcripts:raw."""

    lead: dict[str, Any]
    deals: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    recordings: list[dict[str, Any]]
    transcript_segments: list[dict[str, Any]]
    coaching_prompts: list[dict[str, Any]] = []  # the prompts shown on the lead's calls
    activities: list[dict[str, Any]]
