"""Each organization's coaching set-up, read from its settings and cached.

``organizations.settings`` may hold ``coaching_rules`` (a rule-set override,
see coaching/rule_set.py) and ``keep_raw_transcripts`` (whether raw,
unmasked transcript text may be stored). An invalid rule set is logged and
the default one used: a typo in an admin's JSON must not stop transcription.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from coaching.call_coach import CoachingProfile, default_profile
from coaching.rule_set import RuleSetError
from crm_core.orgs import org_settings

log = logging.getLogger(__name__)

CACHE_S = 60.0


@dataclass(frozen=True, slots=True)
class OrgCoaching:
    profile: CoachingProfile
    keep_raw_text: bool


class OrgCoachingProfiles:
    def __init__(self, pool_source: Callable[[], asyncpg.Pool]) -> None:
        self._pool_source = pool_source
        self._cache: dict[str, tuple[float, OrgCoaching]] = {}

    async def for_org(self, org_id: str) -> OrgCoaching:
        cached = self._cache.get(org_id)
        if cached is not None and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        settings: dict = {}
        try:
            settings = await org_settings(self._pool_source(), org_id)
        except (asyncpg.PostgresError, OSError) as exc:
            # The database being down must not stop a call from being coached.
            log.warning("organization settings unavailable (%s); using defaults", exc)
            if cached is not None:
                return cached[1]
        profile = default_profile()
        rules = settings.get("coaching_rules")
        if rules:
            try:
                profile = CoachingProfile.load(rules)
            except RuleSetError as exc:
                log.error("organization %s has an invalid coaching rule set (%s); using the default",
                          org_id, exc)
        result = OrgCoaching(profile, bool(settings.get("keep_raw_transcripts", False)))
        self._cache[org_id] = (time.monotonic(), result)
        return result

