"""Bodies of /api/v1/organization, /api/v1/coaching-rules and /api/v1/carrier-numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from crm_core.admin.org_settings import OrgSettings
from crm_core.api.schemas.common import Input, Output

_RULES_EXAMPLE = {
    "keywords": {
        "competitor": {
            "phrases": ["Acme", {"phrase": "Globex", "link": "/cards/globex"}],
            "parties": ["customer"],
        }
    },
    "rules": [
        {
            "id": "competitor-mentioned",
            "trigger": "keyword",
            "category": "competitor",
            "severity": "warning",
            "title": "Competitor mentioned",
            "body": "Ask what they like about it; lead with our integrations.",
        }
    ],
}


class Organization(Output):
    id: UUID
    name: str
    slug: str
    settings: OrgSettings


class RuleSetOut(Output):
    version: int | None = Field(
        description="The version in force; null: never saved (the defaults apply)."
    )
    rules: dict[str, Any] = Field(
        description="The organization's override of the default rule set "
        "(see docs/coaching.md); {} is the defaults.",
        examples=[_RULES_EXAMPLE],
    )


class RuleSetSave(Input):
    rules: dict[str, Any] = Field(
        description="The rule set (an override of the defaults).", examples=[_RULES_EXAMPLE]
    )
    note: str | None = Field(None, max_length=500, description="What changed, for the history.")


class RuleSetVersion(Output):
    id: UUID
    version: int
    note: str | None
    created_by: UUID | None
    restored_from: int | None = Field(description="The version this one rolled back to.")
    created_at: datetime
    rules: dict[str, Any] = Field(examples=[_RULES_EXAMPLE])


class RulePreviewIn(Input):
    text: str = Field(
        min_length=1,
        max_length=2000,
        description="A sentence said on a call.",
        examples=["Honestly Acme quoted us less and it's too expensive for us right now."],
    )
    party: Literal["rep", "customer"] = "customer"
    rules: dict[str, Any] | None = Field(
        None,
        description="A rule set to try (as it would be saved); null: the one in force.",
        examples=[_RULES_EXAMPLE],
    )


class PreviewPrompt(Output):
    rule_id: str
    kind: str
    severity: str
    title: str
    body: str
    link: str | None
    evidence: list[str]


class PreviewKeyword(Output):
    category: str
    keyword: str
    matched: str


class RulePreview(Output):
    prompts: list[PreviewPrompt]
    keywords: list[PreviewKeyword]


class CarrierNumberIn(Input):
    number: str = Field(
        min_length=3,
        max_length=32,
        description="The number callers dial, E.164.",
        examples=["+14155550123"],
    )
    user_id: UUID = Field(description="The rep it rings.")


class CarrierNumber(Output):
    id: UUID
    number: str = Field(examples=["+14155550123"])
    user_id: UUID
    user_name: str | None
    created_at: datetime
