"""Bodies of sign-in (/auth/token) and /api/v1/me."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from crm_core.api.schemas.common import Input, Role


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
