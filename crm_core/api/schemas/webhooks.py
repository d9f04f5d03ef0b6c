"""Bodies of /api/v1/webhooks: endpoints, their secrets and their deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from crm_core.api.schemas.common import SHOWN_ONCE, Input, Output, absent_or_set

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
    model_config = absent_or_set("url", "event_types", "active")

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
    secret: str | None = Field(
        description="The signing secret (whsec_…); shown only in this response. null in an "
                    "Idempotency-Key replay (header Secret-Redacted: secret): it is never stored; "
                    "rotate the secret of this endpoint (id) if the first answer was lost.",
        json_schema_extra=SHOWN_ONCE)


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
