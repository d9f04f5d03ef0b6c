"""An organization's own settings (``organizations.settings``), as the node reads them.

The settings are a JSON object an admin edits; among its keys are the coaching
set-up (``coaching_rules``, ``keep_raw_transcripts``), the plan tier (``plan``)
and a custom API rate limit (``rate_limit_per_min``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from storage.ids import uuid_or_none


async def org_settings(db: asyncpg.Pool | asyncpg.Connection, org_id: str) -> dict[str, Any]:
    """The organization's settings object; ``{}`` when ``org_id`` is not a UUID, names no
    organization, or its settings are not a JSON object."""
    if uuid_or_none(org_id) is None:
        return {}
    # Compare the uuid column itself, so the primary key serves the lookup.
    value = await db.fetchval("SELECT settings FROM organizations WHERE id = $1::uuid", org_id)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class RatePlan:
    """What sizes an organization's API budget: its plan tier and any custom per-minute limit."""

    plan: str | None = None
    rate_limit_per_min: int | None = None


async def org_rate_plan(db: asyncpg.Pool | asyncpg.Connection, org_id: str) -> RatePlan:
    """The organization's plan (a string, else None) and custom limit (a positive integer, else None)."""
    settings = await org_settings(db, org_id)
    plan = settings.get("plan") if isinstance(settings.get("plan"), str) else None
    raw = settings.get("rate_limit_per_min")
    custom = raw if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0 else None
    return RatePlan(plan, custom)


def reps_review_own_calls(settings: dict[str, Any]) -> bool:
    """May a rep open the review of their own calls (transcript, prompts, summary, recording)?

    ``settings.reps_review_own_calls``; true unless the organization set it to false (a value
    that is not a boolean is ignored). Whether the review plays the audio is decided apart,
    by ``reps_review_own_recordings`` (crm_core/recordings/access.py).
    """
    value = settings.get("reps_review_own_calls", True)
    return value if isinstance(value, bool) else True


async def org_reps_review_own_calls(db: asyncpg.Pool | asyncpg.Connection, org_id: str) -> bool:
    return reps_review_own_calls(await org_settings(db, org_id))
