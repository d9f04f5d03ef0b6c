"""The API's request and response bodies (pydantic); the OpenAPI document is generated from these."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from crm_core.auth.principal import ALL_SCOPES

LeadStatus = Literal["new", "contacted", "qualified", "unqualified", "converted"]
Role = Literal["rep", "manager", "admin"]

_EMAIL = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
_PHONE = r"^\+?[0-9 ()./-]{3,32}$"
_STAGE = r"^[a-z0-9_]{1,40}$"
Text = Field(None, max_length=200)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _whole(value: Any) -> Any:
    # JSON Schema's "integer" includes 3460.0; strict validation alone would refuse it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# The company size in a request body: 3460 or 3460.0, never "3460" or true. (The bounds sit
# inside, under the float check, so the document shows them as minimum/maximum.)
CompanySize = Annotated[int, Field(ge=0, le=10_000_000), BeforeValidator(_whole)]


def _absent_or_set(*names: str, changes_something: bool = False) -> ConfigDict:
    """Config for a PATCH body whose ``names`` may be left out but not set to null.

    pydantic documents ``X | None = None`` as nullable; the model's validator refuses null for
    these, so the document says what the server does: the type without null, no default.
    ``changes_something``: the handler answers 400 ``empty_update`` to ``{}`` (records.update_row).
    """

    def edit(schema: dict[str, Any]) -> None:
        if changes_something:
            schema["minProperties"] = 1
        for name in names:
            prop = schema["properties"][name]
            prop.pop("default", None)
            options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
            if len(options) == 1:
                prop.update(options[0])
            elif options:
                prop["anyOf"] = options

    return ConfigDict(json_schema_extra=edit)


class Input(BaseModel):
    # No whitespace stripping: the length limits and patterns in the document hold for the text
    # as sent (a stripped " x…" passed maxLength on the server but not in the document).
    # CSV imports strip their cells themselves.
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _no_nul_characters(self) -> Any:
        # PostgreSQL text and jsonb cannot hold U+0000; refuse it here rather than fail there.
        # An "after" check: a "before" one would make pydantic validate JSON bodies in Python
        # mode, where strict validation refuses the strings that carry dates and UUIDs.
        if _has_nul(self.model_dump()):
            raise ValueError("text must not contain NUL (U+0000) characters")
        return self


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class Error(BaseModel):
    error: ErrorBody


# --- auth ---------------------------------------------------------------

class TokenRequest(Input):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    organization: str | None = Field(None, description="Organization slug, when the email is in several.")


class TokenResponse(BaseModel):
    token: str = Field(description="A short-lived bearer token for API calls.")
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class Me(BaseModel):
    user_id: UUID
    org_id: UUID
    role: Role
    team_ids: list[UUID]
    permissions: list[str]


# --- leads ----------------------------------------------------------------

class _LeadFields(Input):
    first_name: str | None = Text
    last_name: str | None = Text
    email: str | None = Field(None, max_length=320, pattern=_EMAIL)
    phone: str | None = Field(None, pattern=_PHONE)
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
    model_config = _absent_or_set("status", changes_something=True)

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
    pipeline: str = Field("default", max_length=60)
    stage: str = Field("qualification", pattern=_STAGE)
    expected_close: date | None = None


# --- deals ----------------------------------------------------------------

class DealCreate(Input):
    name: str = Field(min_length=1, max_length=200)
    lead_id: UUID | None = None
    company: str | None = Text
    value: float = Field(0, ge=0, le=999_999_999_999.99)
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    pipeline: str = Field("default", min_length=1, max_length=60)
    stage: str = Field("qualification", pattern=_STAGE)
    expected_close: date | None = None
    owner_id: UUID | None = None


class DealUpdate(Input):
    model_config = _absent_or_set("name", "value", "currency", "pipeline", "stage", changes_something=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    company: str | None = Text
    value: float | None = Field(None, ge=0, le=999_999_999_999.99)
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    pipeline: str | None = Field(None, min_length=1, max_length=60)
    stage: str | None = Field(None, pattern=_STAGE)
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
    stage: str
    expected_close: date | None
    closed_at: datetime | None
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


# --- calls and transcripts -----------------------------------------------

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


# --- activities -----------------------------------------------------------

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


# --- users, teams, tokens --------------------------------------------------

class UserCreate(Input):
    email: str = Field(max_length=320, pattern=_EMAIL)
    name: str = Field(min_length=1, max_length=200)
    role: Role = "rep"
    team_id: UUID | None = None
    territory: str | None = Text
    phone: str | None = Field(None, pattern=_PHONE)
    password: str | None = Field(None, min_length=10, max_length=1024)


class UserUpdate(Input):
    model_config = _absent_or_set(changes_something=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    role: Role | None = None
    team_id: UUID | None = None
    territory: str | None = Text
    phone: str | None = Field(None, pattern=_PHONE)
    password: str | None = Field(None, min_length=10, max_length=1024)
    is_active: bool | None = None


class User(Output):
    id: UUID
    email: str
    name: str
    role: Role
    team_id: UUID | None
    territory: str | None
    phone: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


class TeamCreate(Input):
    name: str = Field(min_length=1, max_length=120)


class Team(Output):
    id: UUID
    name: str
    created_at: datetime


class ApiTokenCreate(Input):
    name: str = Field(min_length=1, max_length=120)
    scopes: list[str] = Field(default_factory=lambda: ["read", "write"], max_length=20,
                              # checked by the handler (422 invalid_scopes), listed here for clients
                              json_schema_extra={"minItems": 1, "items": {"type": "string",
                                                                          "enum": sorted(ALL_SCOPES)}})
    expires_at: datetime | None = None
    user_id: UUID | None = Field(None, description="Whose rights the token carries; default: you.")


class ApiToken(Output):
    id: UUID
    user_id: UUID
    name: str
    token_prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiTokenCreated(ApiToken):
    token: str = Field(description="The secret; shown only in this response.")


# --- imports --------------------------------------------------------------

class ImportRowError(BaseModel):
    row: int = Field(description="1-based data row number (the header is row 0).")
    field: str | None
    message: str


class LeadImport(Output):
    id: UUID
    mode: Literal["all_or_nothing", "partial"]
    status: Literal["running", "completed", "failed"]
    total_rows: int
    processed_rows: int
    imported_rows: int
    progress: float = Field(description="processed_rows / total_rows, 0..1")
    errors: list[ImportRowError]
    created_at: datetime
    finished_at: datetime | None


# --- recording review and GDPR requests (served by voice_server, documented here) ---

class RecordingAccessEntry(BaseModel):
    id: int
    actor_id: UUID | None
    actor_name: str | None
    actor_kind: Literal["user", "system", "carrier"]
    action: str = Field(description="recording.play, recording.deleted, ...")
    outcome: Literal["ok", "denied", "error"]
    ip: str | None
    request_id: str | None
    detail: dict[str, Any] = Field(description="Role, byte range, reason of a refusal, ...")
    occurred_at: datetime


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
    coaching_prompts: list[dict[str, Any]] = []  # call-prompts: the prompts shown on the lead's calls
    activities: list[dict[str, Any]]


# --- webhooks (crmfix) ---------------------------------------------------------

_EVENT_PATTERN = r"^[a-z0-9._*-]{1,100}$"
# webhook_endpoints.validate_url has the last word (host, credentials, public address)
_WEBHOOK_URL = r"^\s*[Hh][Tt][Tt][Pp][Ss]?://"


class WebhookCreate(Input):
    url: str = Field(min_length=1, max_length=2048, pattern=_WEBHOOK_URL,
                     description="http(s) URL that receives signed POSTs.")
    event_types: list[Annotated[str, Field(pattern=_EVENT_PATTERN)]] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=50,
        description="Shell-style patterns, e.g. crm.lead.*; default: every event.")
    description: str | None = Field(None, max_length=500)


class WebhookUpdate(Input):
    model_config = _absent_or_set("url", "event_types", "active")

    url: str | None = Field(None, min_length=1, max_length=2048, pattern=_WEBHOOK_URL)
    event_types: list[Annotated[str, Field(pattern=_EVENT_PATTERN)]] | None = Field(None, min_length=1,
                                                                                   max_length=50)
    active: bool | None = None
    description: str | None = Field(None, max_length=500)

    @model_validator(mode="after")
    def _required_not_null(self) -> WebhookUpdate:
        for name in ("url", "event_types", "active"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class Webhook(Output):
    id: UUID
    url: str
    event_types: list[str]
    active: bool
    description: str | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(description="The signing secret (whsec_…); shown only in this response.")


class WebhookDeliveryAttempt(BaseModel):
    attempt: int
    response_status: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


class WebhookDelivery(Output):
    id: int
    event_id: UUID = Field(description="The event's id; receivers de-duplicate on it.")
    event_type: str
    status: Literal["pending", "delivering", "succeeded", "dead"]
    attempts: int
    next_attempt_at: datetime
    response_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    log: list[WebhookDeliveryAttempt] = Field(description="Every attempt, oldest first.")


# --- scoring administration (scoring-gbm) -----------------------------------------

class ScoringModelVersion(BaseModel):
    version: str = Field(description="lead-gbm-<org>-v<n> / deal-gbm-<org>-v<n>; stored with every score.")
    kind: Literal["lead", "deal"]
    format: str = Field(description="boosted-trees-v1 (JSON trees) or logistic-v1.")
    active: bool = Field(description="Whether this version scores the organisation's leads / deals now.")
    metrics: dict[str, Any] = Field(description="Held-out AUCs (this model, the shipped model, the ICP rules, "
                                                "the model it had to beat), calibration error, example counts.")
    created_at: datetime
    trained_by: UUID | None


class TrainedScoringModel(ScoringModelVersion):
    activated: bool = Field(description="True when this training made the new version the active one.")
    compared_with: str = Field(description="What it had to beat on the held-out leads / deals: the active "
                                           "model's version, the ICP rules' version or the shipped model's.")
    summary: str = Field(description="The outcome in plain words.")


class IcpSettings(BaseModel):
    icp: dict[str, Any] | None = Field(description="The organisation's ideal-customer-profile rules "
                                                   "(organizations.settings.icp), or null.")
    version: str | None = Field(description="icp-rules-<hash>: stored with ICP scores; null when unset or invalid.")
    problem: str | None = Field(description="Why a stored configuration cannot be used (it is then ignored).")
    in_use: bool = Field(description="True when these rules score the organisation's leads now (no trained "
                                     "lead model is active).")
    scored_by: str = Field(description="The version that scores the organisation's leads now.")


class IcpUpdate(Input):
    icp: dict[str, Any] | None = Field(description="The rules: base, seniority, industries, company_size, sources, "
                                                   "email, engagement (see the README); null removes them.")
