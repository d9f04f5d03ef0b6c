"""The body of GET /api/v1/search: hits grouped by record type, each with its rank."""

from __future__ import annotations

from pydantic import BaseModel, Field

from crm_core.api.schemas.deals import Deal
from crm_core.api.schemas.leads import Lead


class LeadHit(BaseModel):
    rank: float = Field(description="Higher is a better match; comparable within one group.")
    lead: Lead


class DealHit(BaseModel):
    rank: float
    deal: Deal


class SearchResults(BaseModel):
    q: str
    # One list per record type, best first; a type the caller's token may not read is absent.
    leads: list[LeadHit] | None = None
    deals: list[DealHit] | None = None
