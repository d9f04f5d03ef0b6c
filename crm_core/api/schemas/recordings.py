"""Bodies of /api/v1/calls/{id}/recording/audit: who listened to a recording."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field


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


class RecordingStatus(BaseModel):
    available: bool = Field(description="Whether GET …/recording would play it for this caller.")
    reason: Literal["available", "not_permitted", "recording_off", "not_yet_stored",
                    "not_recorded", "deleted"]
    message: str = Field(description="Why not, in words a reviewer can read.")
