"""Bodies of /api/v1/scoring: trained model versions and the ICP rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from crm_core.api.schemas.common import Input


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
                                                   "email, engagement (see docs/scoring.md); null removes them.")
