"""Bodies of /api/v1/leads: create, update, read, score and convert a lead."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from crm_core.api.schemas.common import EMAIL, PHONE, Input, Output, Text, absent_or_set

LeadStatus = Literal["new", "contacted", "qualified", "unqualified", "converted"]


def _trimmed(value: Any) -> Any:
    # " Ada@Example.com " is the same address: forms pad what people type. Trimmed after
    # validation, so maxLength and the pattern hold for the text as sent, as the document says.
    return value.strip() if isinstance(value, str) else value


# EMAIL, with blanks around it allowed (and trimmed off)
LEAD_EMAIL = r"^\s*" + EMAIL.removeprefix("^").removesuffix("$") + r"\s*$"


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
    email: Annotated[str | None, AfterValidator(_trimmed)] = Field(None, max_length=320, pattern=LEAD_EMAIL)
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


class LeadMerge(Input):
    other_id: UUID = Field(description="The lead merged into this one (then deleted).")


class LeadMergeResult(BaseModel):
    lead: Lead
    merged_id: UUID
    moved: dict[str, int] = Field(description="Rows that now point at the lead: activities, calls, deals.")


class LeadDuplicate(BaseModel):
    lead: Lead
    reasons: list[str] = Field(description="email, phone, name, company: what the two have in common.")
    similarity: float = Field(description="0..1: 1 for a shared e-mail or phone, else trigram similarity.")


MAX_BATCH = 100


class LeadBatchUpdate(LeadUpdate):
    id: UUID


class LeadBatch(Input):
    model_config = ConfigDict(json_schema_extra={"description": f"At most {MAX_BATCH} items in all."})

    create: list[LeadCreate] = Field(default_factory=list, max_length=MAX_BATCH)
    update: list[LeadBatchUpdate] = Field(default_factory=list, max_length=MAX_BATCH)
    delete: list[UUID] = Field(default_factory=list, max_length=MAX_BATCH)
    all_or_nothing: bool = Field(False, description="Write nothing unless every item succeeds.")
    on_duplicate: Literal["error", "merge"] = Field("error", description="As on POST /leads, for create items.")

    @model_validator(mode="after")
    def _bounded(self) -> LeadBatch:
        count = len(self.create) + len(self.update) + len(self.delete)
        if count == 0:
            raise ValueError("the batch has no items")
        if count > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} items per batch, create, update and delete together")
        return self


class BatchError(BaseModel):
    code: str
    message: str
    details: Any = None


class LeadBatchResult(BaseModel):
    op: Literal["create", "update", "delete"]
    index: int = Field(description="The item's position in its list.")
    status: int = Field(description="What the single request would have answered (201, 200, 204, 404, 409, 422...).")
    id: UUID | None
    lead: Lead | None
    error: BatchError | None
    applied: bool = Field(description="False for a success rolled back because another item failed (all_or_nothing).")


class LeadBatchResults(BaseModel):
    applied: bool = Field(description="Whether the successful items were written.")
    succeeded: int
    failed: int
    results: list[LeadBatchResult]
