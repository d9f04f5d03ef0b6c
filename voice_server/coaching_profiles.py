"""Each organization's coaching set-up, read from its settings and cached.

``organizations.settings`` may hold ``coaching_rules`` (a rule-set override,
see coaching/rule_set.py) and ``keep_raw_transcripts`` (whether raw,
unmasked transcript text may be stored). An invalid rule set is logged and
the default one used: a typo in an admin's JSON must not stop transcription.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from coaching.call_coach import CoachingProfile, default_profile
from coaching.rule_set import RuleSetError
from crm_core.orgs import org_settings

log = logging.getLogger(__name__)

# How stale an organization's set-up may get: an admin's edit reaches calls under way (they ask
# every tick) within this, plus a tick. A re-read whose rule set is unchanged keeps the compiled
# profile, so the cost is one primary-key read per organization with calls, every REFRESH_S.
REFRESH_S = 2.0
READ_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class OrgCoaching:
    profile: CoachingProfile
    keep_raw_text: bool


class OrgCoachingProfiles:
    def __init__(self, pool_source: Callable[[], asyncpg.Pool]) -> None:
        self._pool_source = pool_source
        self._cache: dict[str, tuple[float, OrgCoaching, str]] = {}

    async def profile(self, org_id: str) -> CoachingProfile:
        return (await self.for_org(org_id)).profile

    async def for_org(self, org_id: str) -> OrgCoaching:
        cached = self._cache.get(org_id)
        if cached is not None and time.monotonic() - cached[0] < REFRESH_S:
            return cached[1]
        settings: dict = {}
        try:
            # bounded: calls under way ask every tick, and a stalled database must not stall them
            settings = await asyncio.wait_for(org_settings(self._pool_source(), org_id), READ_TIMEOUT_S)
        except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
            # The database being down must not stop a call from being coached.
            log.warning("organization settings unavailable (%s); using defaults", exc)
            if cached is not None:
                self._cache[org_id] = (time.monotonic(), cached[1], cached[2])  # asked again in REFRESH_S
                return cached[1]
        rules = settings.get("coaching_rules")
        fingerprint = json.dumps(rules, sort_keys=True)
        if cached is not None and cached[2] == fingerprint:
            profile = cached[1].profile
        elif not rules:
            profile = default_profile()
        else:
            profile = default_profile()
            try:
                profile = CoachingProfile.load(rules)
            except RuleSetError as exc:
                log.error("organization %s has an invalid coaching rule set (%s); using the default",
                          org_id, exc)
        result = OrgCoaching(profile, bool(settings.get("keep_raw_transcripts", False)))
        self._cache[org_id] = (time.monotonic(), result, fingerprint)
        return result

