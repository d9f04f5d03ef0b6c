"""Bodies of /api/v1/leads/imports: a CSV import's progress and row errors."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from crm_core.api.schemas.common import Output


class ImportRowError(BaseModel):
    row: int = Field(description="1-based data row number (the header is row 0).")
    field: str | None
    message: str


class ImportRowResult(BaseModel):
    row: int
    outcome: Literal["created", "updated", "skipped"]
    lead_id: UUID | None = Field(description="The lead written or matched; null for a match you may not see.")
    key: Literal["email", "phone"] | None = Field(description="The key that matched an existing lead.")


class LeadImport(Output):
    id: UUID
    mode: Literal["all_or_nothing", "partial"]
    on_duplicate: Literal["skip", "update", "create"] = Field(
        description="A row whose e-mail or phone an existing lead holds: skip it, update that lead, or create anyway.")
    outcomes: dict[str, int] = Field(description="Rows per outcome: created, updated, skipped, failed.")
    results: list[ImportRowResult] = Field(description="What each written or matched row became (the first 5000).")
    status: Literal["running", "completed", "failed"]
    total_rows: int
    processed_rows: int
    imported_rows: int
    progress: float = Field(description="processed_rows / total_rows, 0..1")
    errors: list[ImportRowError]
    created_at: datetime
    finished_at: datetime | None
