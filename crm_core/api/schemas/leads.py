"""Bodies of /api/v1/leads: create, update, read, score and convert a lead."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from crm_core.api.schemas.common import EMAIL, PHONE, Input, Output, Text, absent_or_set

LeadStatus = Literal["new", "contacted", "qualified", "unqualified", "converted"]


def _whole(value: Any) -> Any:
    # JSON Schema's "integer" includes 3460.0; strict validation alone would refuse it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The company size in a request body: 3460 or 3460.0, never "3460" or true. (The bounds sit
# inside, under the float check, so the document shows them as minimum/maximum.)
CompanySize = Annotated[int, Field(ge=0, le=10_000_000), BeforeValidator(_whole)]


class _LeadFields(Input):
    first_name: str | None = Text
    last_name: str | None = Text
    email: str | None = Field(None, max_length=320, pattern=EMAIL)
    phone: str | None = Field(None, pattern=PHONE)
    company: str | None = Text
    title: str | None = Text
    company_size: CompanySize | None = None
    industry: str | None = Text
    source: str | None = Text
    territory: str | None = Text
    owner_id: UUID | None = None
    enrichment: dict[str, Any] | None = None


class LeadCreate(_LeadFields):
    # the rule of _identifiable below, in the document
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
        for name in ("first_name", "last_name", "email", "phone", "company")]})

    status: LeadStatus = "new"

    @model_validator(mode="after")
    def _identifiable(self) -> LeadCreate:
        if not any((self.first_name, self.last_name, self.email, self.phone, self.company)):
            raise ValueError("a lead needs at least a name, an email, a phone or a company")
        return self


class LeadUpdate(_LeadFields):
    model_config = absent_or_set("status", changes_something=True)

    status: LeadStatus | None = None

    @field_validator("status")
    @classmethod
    def _status_not_null(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("status cannot be null")
        return value


class Lead(Output):
    id: UUID
    owner_id: UUID | None
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    company: str | None
    title: str | None
    company_size: int | None
    industry: str | None
    source: str | None
    territory: str | None
    status: LeadStatus
    ai_score: float | None
    grade: str | None
    score_reasons: list[str] = Field(description="The score's strongest factors, in words.")
    score_model_version: str | None
    scored_at: datetime | None
    enrichment: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class LeadScoreResult(BaseModel):
    lead_id: UUID
    score: float
    grade: str
    reasons: list[str]
    model_version: str


class LeadConvert(Input):
    name: str | None = Field(None, max_length=200, description="Deal name; default: the lead's company or name.")
    value: float = Field(0, ge=0, le=999_999_999_999.99)
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    pipeline: str | None = Field(None, min_length=1, max_length=60,
                                 description="The deal's pipeline; left out: the organisation's default.")
    stage: str | None = Field(None, min_length=1, max_length=60,
                              description="One of the pipeline's stages; left out: its first open stage.")
    expected_close: date | None = None
