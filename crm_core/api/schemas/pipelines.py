"""Bodies of /api/v1/pipelines and a deal's stage history."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field, model_validator

from crm_core.api.schemas.common import Input, Output, absent_or_set

StageType = Literal["open", "won", "lost"]
STAGE_NAME = Field(min_length=1, max_length=60, pattern=r"^\S(.*\S)?$",
                   description="Unique within the pipeline; no leading or trailing space.",
                   examples=["negotiation"])
PROBABILITY = Field(ge=0, le=1, description="The stage's win probability, for the weighted forecast.",
                    examples=[0.6])
STAGE_TYPE_DOC = ("open: the deal is in progress; won or lost: entering the stage closes the deal "
                  "(sets closed_at), leaving it for an open stage reopens it.")


class StageCreate(Input):
    name: str = STAGE_NAME
    probability: float = PROBABILITY
    type: StageType = Field("open", description=STAGE_TYPE_DOC)
    position: int | None = Field(None, ge=0, le=999,
                                 description="Where it goes (0 = first); left out: after the last stage.")


class StageUpdate(Input):
    model_config = absent_or_set("name", "probability", "type", "position", changes_something=True)

    name: str | None = Field(None, min_length=1, max_length=60, pattern=r"^\S(.*\S)?$")
    probability: float | None = Field(None, ge=0, le=1)
    type: StageType | None = Field(None, description=STAGE_TYPE_DOC + " A stage with deals in it keeps its type.")
    position: int | None = Field(None, ge=0, le=999, description="Move the stage here; the others shift.")

    @model_validator(mode="after")
    def _not_null(self) -> StageUpdate:
        for name in ("name", "probability", "type", "position"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class Stage(Output):
    id: UUID
    name: str
    position: int
    probability: float
    type: StageType
    deal_count: int = Field(description="Deals in this stage now.")


class PipelineCreate(Input):
    name: str = Field(min_length=1, max_length=60, pattern=r"^\S(.*\S)?$", examples=["Enterprise"])
    stages: list[StageCreate] = Field(
        min_length=1, max_length=50,
        description="In order; at least one open stage (new deals start in the first). Positions are ignored.",
        examples=[[{"name": "qualification", "probability": 0.1, "type": "open"},
                   {"name": "proposal", "probability": 0.5, "type": "open"},
                   {"name": "closed_won", "probability": 1.0, "type": "won"},
                   {"name": "closed_lost", "probability": 0.0, "type": "lost"}]])
    is_default: bool = Field(False, description="New deals that name no pipeline go here.")


class PipelineUpdate(Input):
    model_config = absent_or_set("name", "is_default", changes_something=True)

    name: str | None = Field(None, min_length=1, max_length=60, pattern=r"^\S(.*\S)?$")
    is_default: bool | None = Field(None, description="true makes this the default (only true is accepted).")

    @model_validator(mode="after")
    def _not_null(self) -> PipelineUpdate:
        for name in ("name", "is_default"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if self.is_default is False:
            raise ValueError("is_default can only be set to true (make another pipeline the default instead)")
        return self


class Pipeline(Output):
    id: UUID
    name: str
    is_default: bool
    stages: list[Stage] = Field(description="In order.")
    created_at: datetime
    updated_at: datetime


class StageHistoryEntry(Output):
    stage_id: UUID | None = Field(description="null when the stage was deleted since.")
    stage: str = Field(description="The stage's name when the deal entered it.")
    type: StageType
    entered_at: datetime
    left_at: datetime | None = Field(description="null: the deal is still in this stage.")
    seconds_in_stage: float = Field(description="Until left_at, or until now for the current stage.")
    migrated_from: str | None = Field(description="The free-text stage this was read from when pipelines arrived.")
