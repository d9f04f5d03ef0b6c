"""Bodies of /api/v1/users, /api/v1/teams and /api/v1/api-tokens."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from crm_core.api.schemas.common import (
    EMAIL,
    PHONE,
    SHOWN_ONCE,
    Input,
    Output,
    Role,
    Text,
    absent_or_set,
)
from crm_core.auth.principal import ALL_SCOPES

SIP_URI = r"^sips?:[^\s@<>\"]{1,64}@[A-Za-z0-9.:\[\]-]{1,190}$"


class UserCreate(Input):
    email: str = Field(max_length=320, pattern=EMAIL)
    name: str = Field(min_length=1, max_length=200)
    role: Role = "rep"
    team_id: UUID | None = None
    territory: str | None = Text
    phone: str | None = Field(None, pattern=PHONE)
    sip_uri: str | None = Field(None, max_length=256, pattern=SIP_URI, examples=["sip:rita@pbx.example.com"],
                                description="Where the rep's calls ring over SIP (else: phone).")
    password: str | None = Field(None, min_length=10, max_length=1024)


class UserUpdate(Input):
    model_config = absent_or_set(changes_something=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    role: Role | None = None
    team_id: UUID | None = None
    territory: str | None = Text
    phone: str | None = Field(None, pattern=PHONE)
    sip_uri: str | None = Field(None, max_length=256, pattern=SIP_URI, examples=["sip:rita@pbx.example.com"])
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
    sip_uri: str | None = Field(examples=["sip:rita@pbx.example.com"])
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
    token: str | None = Field(
        description="The secret; shown only in this response. null in an Idempotency-Key replay "
                    "(header Secret-Redacted: token): it is never stored; revoke this token (id) and "
                    "create another if the first answer was lost.",
        json_schema_extra=SHOWN_ONCE)
