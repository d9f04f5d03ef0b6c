"""The coaching engine as the admin API uses it: check a rule set, preview it on a sentence.

The preview runs the real engine (``CallCoach``) on one final segment, so what it shows is what
a live call would prompt for those words.
"""

from __future__ import annotations

import re
from typing import Any

from coaching.call_coach import CallCoach, CoachingProfile
from coaching.records import CoachingPrompt, KeywordHit, SegmentInput
from coaching.rule_set import RuleSetError, load_rule_set

_MERGED_RULE = re.compile(r"^rules\[\d+\] \((?P<id>[^)]*)\)")


def _as_written(message: str, rules: dict[str, Any]) -> str:
    """The engine checks the defaults merged with the override, so ``rules[11] (x)`` counts the
    defaults' rules too: point at the override's own ``rules[k]`` for the same id instead."""
    match = _MERGED_RULE.match(message)
    own = rules.get("rules")
    if match and isinstance(own, list):
        for index, rule in enumerate(own):
            if isinstance(rule, dict) and rule.get("id") == match["id"]:
                return f"rules[{index}] ({match['id']})" + message[match.end() :]
    return message


class CoachingRuleSets:
    """``crm_core.admin.rule_sets.RuleSetEngine`` over the coaching package."""

    def check(self, rules: dict[str, Any]) -> None:
        """RuleSetError (a ValueError) naming the bad field as the admin wrote it."""
        try:
            load_rule_set(rules)
        except RuleSetError as exc:
            raise RuleSetError(_as_written(str(exc), rules)) from None

    def preview(self, rules: dict[str, Any] | None, text: str, party: str) -> dict[str, Any]:
        coach = CallCoach(CoachingProfile.load(rules or None))
        words = max(1, len(text.split()))
        segment = SegmentInput("preview", party, text, 0, words * 350)
        insights = coach.feed(segment)
        return {
            "prompts": [
                {
                    "rule_id": p.rule_id,
                    "kind": p.kind,
                    "severity": p.severity,
                    "title": p.title,
                    "body": p.body,
                    "link": p.link,
                    "evidence": list(p.evidence),
                }
                for p in insights
                if isinstance(p, CoachingPrompt)
            ],
            "keywords": [
                {"category": h.category, "keyword": h.keyword, "matched": h.matched_text}
                for h in insights
                if isinstance(h, KeywordHit)
            ],
        }
