"""Bodies of /api/v1/calls/{id}/comments: remarks pinned to a moment of a call."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import Field

from crm_core.api.schemas.common import Input, Output


class CallCommentCreate(Input):
    at_ms: int = Field(ge=0, le=2**31 - 1, description="The moment, in ms on the call clock.")
    segment_key: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The transcript segment the comment is about, if any.",
    )
    body: str = Field(
        min_length=1, max_length=2000, pattern=r"\S", description="The remark (not blank)."
    )


class CallComment(Output):
    id: UUID
    call_id: UUID
    author_id: UUID | None = Field(description="Who wrote it (null once that user is deleted).")
    at_ms: int
    segment_key: str | None
    body: str
    created_at: datetime
