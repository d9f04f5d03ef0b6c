"""Bodies of /api/v1/deals: create, update, read and predict a deal."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from crm_core.api.schemas.common import Input, Output, Text, absent_or_set

PIPELINE_FIELD = dict(min_length=1, max_length=60, examples=["default"],
                      description="The pipeline's name (GET /api/v1/pipelines); left out: the organisation's default.")
STAGE_FIELD = dict(min_length=1, max_length=60, examples=["proposal"],
                   description="One of the pipeline's stages (422 unknown_stage lists them); left out: its first "
                               "open stage. A won or lost stage closes the deal, an open one reopens it.")
LOST_REASON_FIELD = dict(max_length=200, examples=["price"],
                         description="Why the deal was lost (optional; only with a lost stage; cleared when the "
                                     "deal is won or reopened).")


class DealCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    lead_id: UUID | None = None
    company: str | None = Text
    value: float = Field(0, ge=0, le=999_999_999_999.99)
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    pipeline: str | None = Field(None, **PIPELINE_FIELD)
    stage: str | None = Field(None, **STAGE_FIELD)
    lost_reason: str | None = Field(None, **LOST_REASON_FIELD)
    expected_close: date | None = None
    owner_id: UUID | None = None


class DealUpdate(Input):
    model_config = absent_or_set("name", "value", "currency", "pipeline", "stage", changes_something=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    company: str | None = Text
    value: float | None = Field(None, ge=0, le=999_999_999_999.99)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    pipeline: str | None = Field(None, **{**PIPELINE_FIELD, "description": "Move the deal to this pipeline "
                                          "(with stage, or into its first open stage)."})
    stage: str | None = Field(None, **STAGE_FIELD)
    lost_reason: str | None = Field(None, **LOST_REASON_FIELD)
    expected_close: date | None = None
    owner_id: UUID | None = None

    @model_validator(mode="after")
    def _required_not_null(self) -> DealUpdate:
        for name in ("name", "value", "currency", "pipeline", "stage"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class Deal(Output):
    id: UUID
    lead_id: UUID | None
    owner_id: UUID | None
    name: str
    company: str | None
    value: float
    currency: str
    pipeline: str
    pipeline_id: UUID
    stage: str
    stage_id: UUID
    stage_entered_at: datetime
    lost_reason: str | None
    expected_close: date | None
    closed_at: datetime | None = Field(description="Set when the deal entered a won or lost stage; null while open.")
    created_at: datetime
    updated_at: datetime


class DealPredictionResult(BaseModel):
    id: UUID
    deal_id: UUID
    win_probability: float = Field(ge=0, le=1)
    predicted_close: date | None
    risk_flags: list[str] = Field(description="Machine-readable risks, e.g. stalled_in_stage.")
    reasons: list[str]
    model_version: str
    created_at: datetime
