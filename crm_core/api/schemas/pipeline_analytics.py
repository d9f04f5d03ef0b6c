"""The body of GET /api/v1/analytics/pipeline: value, forecast, velocity and win/loss of one pipeline."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from pydantic import BaseModel, Field

from crm_core.api.schemas.pipelines import StageType


class StageFigures(BaseModel):
    stage_id: UUID
    name: str
    type: StageType
    position: int
    probability: float
    deals: int = Field(description="Deals in the stage now.")
    value: float = Field(description="Their summed value.")
    weighted_value: float = Field(description="value × the stage's probability.")
    entered: int = Field(description="Deals that ever entered the stage (its history).")
    avg_days_in_stage: float | None = Field(description="Mean days of the stays that ended; null: none ended yet.")
    conversion_to_later: float | None = Field(
        description="Share of the deals that entered the stage and later reached a later stage that is not lost "
                    "(a won stage counts); null for closed stages or none entered.")


class QuarterForecast(BaseModel):
    period: str = Field(description="current_quarter or next_quarter.")
    start: date
    end: date = Field(description="Exclusive.")
    open_deals: int = Field(description="Open deals expected to close in the quarter (expected_close).")
    open_value: float
    weighted_by_stage: float = Field(description="Σ value × stage probability.")
    weighted_by_model: float = Field(description="Σ value × the deal's latest predicted win probability, over the "
                                                 "deals that have a prediction.")
    predicted_deals: int = Field(description="How many of the open deals have a prediction (POST /deals/{id}/predict "
                                             "or the background jobs).")
    won_value: float = Field(description="Value of the deals that entered a won stage in the quarter.")


class ReasonFigures(BaseModel):
    reason: str | None = Field(description="The lost reason; null: none given.")
    deals: int
    value: float


class WinLoss(BaseModel):
    won: int
    lost: int
    won_value: float
    lost_value: float
    win_rate: float | None = Field(description="won / (won + lost); null with no closed deal.")
    lost_by_reason: list[ReasonFigures]


class GroupFigures(BaseModel):
    id: UUID | None = Field(description="The rep (owner) or team; null: no owner / no team.")
    name: str | None
    open_deals: int
    open_value: float
    weighted_by_stage: float
    won: int
    lost: int
    won_value: float
    win_rate: float | None


class PipelineAnalytics(BaseModel):
    pipeline_id: UUID
    pipeline: str
    as_of: date = Field(description="Today (UTC): the quarters are counted from it.")
    currencies: list[str] = Field(description="The deals' currencies; values are summed as they are, not converted.")
    stages: list[StageFigures] = Field(description="In the pipeline's order.")
    forecast: list[QuarterForecast]
    win_loss: WinLoss
    by_rep: list[GroupFigures]
    by_team: list[GroupFigures]
