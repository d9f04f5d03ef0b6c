"""Bodies of /api/v1/analytics/team: figures per rep, per team, per week, and the calls behind them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from crm_core.api.schemas.common import Output


class Figures(Output):
    """One group of calls' figures (definitions: docs/team-analytics.md)."""

    calls: int
    duration_ms: int = Field(description="Summed call length.")
    talk_ms: int = Field(description="The rep's talk time, summed.")
    customer_talk_ms: int
    talk_share: float | None = Field(
        description="The rep's share of all talk, time-weighted (0..1)."
    )
    longest_monologue_ms: int | None = Field(
        description="Mean over calls of the rep's longest turn."
    )
    max_longest_monologue_ms: int | None
    interruptions: int = Field(description="Times the rep started while the customer spoke.")
    questions: int = Field(description="Questions the rep asked.")
    patience_ms: float | None = Field(
        description="Mean gap before the rep answered a customer turn."
    )
    customer_sentiment: float | None = Field(
        description="Mean over calls of the customer's mean score, -1..+1."
    )
    prompts_fired: int
    prompts_followed: int
    follow_rate: float | None = Field(
        description="Prompts followed / fired, over calls where it is known."
    )
    checklist_completion: float | None = Field(description="Checklist items ticked / items.")
    calls_with_competitors: int
    competitor_mentions: int
    calls_with_objections: int
    objection_mentions: int


class GroupFigures(Figures):
    id: str | None = Field(description="The rep's or team's id (null: reps in no team).")
    name: str
    team_id: str | None = None


class Heard(BaseModel):
    name: str
    calls: int


class TeamAnalytics(BaseModel):
    start: date = Field(description="The period's first day (the query's from).")
    end: date = Field(description="The period's last day (the query's to).")
    group: Literal["rep", "team"]
    total: Figures
    data: list[GroupFigures]
    competitors: list[Heard] = Field(description="Competitors heard most, by calls.")
    objections: list[Heard] = Field(description="Objection categories heard most, by calls.")


class WeekFigures(Figures):
    week: date = Field(description="The week's Monday (UTC).")


class TeamTrends(BaseModel):
    start: date = Field(description="The period's first day (the query's from).")
    end: date = Field(description="The period's last day (the query's to).")
    data: list[WeekFigures]


class CallFigures(Output):
    id: str = Field(description="The call's id.")
    started_at: datetime
    rep_id: str | None
    rep_name: str | None
    duration_ms: int
    rep_talk_ms: int
    customer_talk_ms: int
    rep_longest_monologue_ms: int
    customer_longest_monologue_ms: int
    rep_interruptions: int
    customer_interruptions: int
    rep_questions: int
    customer_questions: int
    patience_ms: float | None
    customer_sentiment: float | None
    prompts_fired: int
    prompts_followed: int | None
    checklist_total: int | None
    checklist_done: int | None
    competitors: list[str]
    objections: list[str]


class CallsBehind(BaseModel):
    data: list[CallFigures]
    next_cursor: str | None
