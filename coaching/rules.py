"""Coaching rules → prompts, with cooldowns so the rep is not flooded.

One ``RuleEngine`` per call. Three guards keep prompts rare and unique:

- cooldown per (rule, subject): "Gong" and "Chorus" both prompt, a second
  "Gong" inside the rule's ``cooldown_s`` does not;
- ``max_fires`` per rule (checklist rules fire once);
- a call-wide budget of ``max_prompts_per_minute`` (critical prompts, e.g.
  compliance, are never held back by it).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from coaching.records import CoachingPrompt, KeywordHit, SentimentScore, TalkMetrics
from coaching.rule_set import Rule, RuleSet
from coaching.sentiment import PartyTrend


class _Values(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, values: dict[str, Any]) -> str:
    """Fill ``{name}`` fields; a template that does not fit its values is shown as written."""
    try:
        return template.format_map(_Values(values))
    except (ValueError, TypeError, IndexError, KeyError):
        return template


def metric_value(metrics: TalkMetrics, name: str, party: str | None = None) -> float:
    if name == "longest_monologue_s" and party is not None:
        return getattr(metrics, f"{party}_longest_monologue_ms") / 1000  # that party's own
    if name.endswith("_s"):
        base = name[:-2] + "_ms"
        return getattr(metrics, base) / 1000
    return float(getattr(metrics, name))


_COMPARE = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}


class RuleEngine:
    def __init__(self, rule_set: RuleSet, call_start_ms: int = 0) -> None:
        self.call_start_ms = call_start_ms
        self._set_rules(rule_set)
        self._last_fired: dict[tuple[str, Any], int] = {}
        self._fired: dict[str, int] = {}
        self._recent: deque[int] = deque()
        self.checklist_done: dict[str, int] = {}
        self._silence_prompted_at: dict[str, int] = {}

    def _set_rules(self, rule_set: RuleSet) -> None:
        self.rule_set = rule_set
        self._by_trigger: dict[str, list[Rule]] = {}
        for rule in rule_set.rules:
            self._by_trigger.setdefault(rule.trigger, []).append(rule)
        self._max_per_minute = int(rule_set.option("max_prompts_per_minute"))

    def use_rule_set(self, rule_set: RuleSet) -> None:
        """Apply an edited rule set mid-call. What already fired keeps its cooldowns and counts
        (by rule id), so a rule kept across the edit does not prompt again early."""
        self._set_rules(rule_set)

    # -- triggers ---------------------------------------------------------------------------

    def on_keywords(self, hits: list[KeywordHit], partial: bool = False) -> list[CoachingPrompt]:
        """Prompts for keyword hits; hits from a partial transcript tick no checklist item."""
        prompts = []
        for hit in hits:
            for rule in () if partial else self._by_trigger.get("checklist", ()):
                if rule.category == hit.category and rule.party in (None, hit.party):
                    self.checklist_done.setdefault(rule.id, hit.end_ms)
            for rule in self._by_trigger.get("keyword", ()):
                if rule.category != hit.category or rule.party not in (None, hit.party):
                    continue
                prompt = self._fire(rule, hit.keyword.lower(), hit.end_ms, hit.party,
                                    {"keyword": hit.keyword, "matched": hit.matched_text,
                                     "category": hit.category, "party": hit.party},
                                    evidence=(hit.matched_text,), link=hit.link)
                if prompt:
                    prompts.append(prompt)
        return prompts

    def on_sentiment(self, score: SentimentScore, trend: PartyTrend) -> list[CoachingPrompt]:
        prompts = []
        for rule in self._by_trigger.get("sentiment", ()):
            if rule.party not in (None, score.party) or trend.count < 2:
                continue
            dropped = rule.drop is None or trend.peak - trend.value >= rule.drop
            low = rule.below is None or trend.value <= rule.below
            if dropped and low:
                prompt = self._fire(rule, None, score.at_ms, score.party,
                                    {"value": trend.value, "peak": trend.peak,
                                     "party": score.party},
                                    evidence=(f"trend {trend.value:+.2f} from peak "
                                              + f"{trend.peak:+.2f}",))
                if prompt:
                    prompts.append(prompt)
        return prompts

    def on_metrics(self, metrics: TalkMetrics) -> list[CoachingPrompt]:
        prompts = []
        elapsed_s = (metrics.at_ms - self.call_start_ms) / 1000
        for rule in self._by_trigger.get("metric", ()):
            if elapsed_s < rule.after_s:
                continue
            party = metrics.current_monologue_party if rule.metric == "current_monologue_s" \
                else rule.party
            if rule.party is not None and party != rule.party:
                continue
            value = metric_value(metrics, rule.metric, party)
            if not _COMPARE[rule.op](value, rule.value):
                continue
            prompt = self._fire(rule, None, metrics.at_ms, party,
                                {"value": value, "metric": rule.metric, "party": party},
                                evidence=(f"{rule.metric}={value:.2f}",))
            if prompt:
                prompts.append(prompt)
        return prompts

    def on_tick(self, now_ms: int, last_speech_end_ms: int | None) -> list[CoachingPrompt]:
        prompts = []
        if last_speech_end_ms is not None:
            quiet_s = (now_ms - last_speech_end_ms) / 1000
            for rule in self._by_trigger.get("silence", ()):
                prompted_at = self._silence_prompted_at.get(rule.id)
                if prompted_at is not None and last_speech_end_ms <= prompted_at:
                    continue  # one prompt per stretch: nobody has spoken since the last one
                if quiet_s >= rule.seconds:
                    # the stretch is the cooldown subject: one prompt per cooldown_s of it
                    prompt = self._fire(rule, last_speech_end_ms, now_ms, None,
                                        {"value": quiet_s}, evidence=(f"silent {quiet_s:.0f} s",))
                    if prompt:
                        self._silence_prompted_at[rule.id] = now_ms
                        prompts.append(prompt)
        for rule in self._by_trigger.get("checklist", ()):
            if rule.id in self.checklist_done:
                continue
            if now_ms - self.call_start_ms >= rule.by_s * 1000:
                prompt = self._fire(rule, None, now_ms, rule.party,
                                    {"category": rule.category, "value": rule.by_s},
                                    evidence=(f"no {rule.category} by {rule.by_s:.0f} s",))
                if prompt:
                    prompts.append(prompt)
        return prompts

    def missed_checklist(self) -> list[str]:
        return [r.id for r in self._by_trigger.get("checklist", ())
                if r.id not in self.checklist_done]

    # -- firing -------------------------------------------------------------------------------

    def _fire(self, rule: Rule, subject: Any, at_ms: int, party: str | None,
              values: dict[str, Any], evidence: tuple[str, ...] = (),
              link: str | None = None) -> CoachingPrompt | None:
        if rule.max_fires is not None and self._fired.get(rule.id, 0) >= rule.max_fires:
            return None
        key = (rule.id, subject)
        last = self._last_fired.get(key)
        if last is not None and at_ms - last < rule.cooldown_s * 1000:
            return None
        if rule.severity != "critical":
            while self._recent and at_ms - self._recent[0] >= 60_000:
                self._recent.popleft()
            if len(self._recent) >= self._max_per_minute:
                return None
            self._recent.append(at_ms)
        self._last_fired[key] = at_ms
        self._fired[rule.id] = self._fired.get(rule.id, 0) + 1
        return CoachingPrompt(rule_id=rule.id, kind=rule.trigger, severity=rule.severity,
                              title=render(rule.title, values), body=render(rule.body, values),
                              at_ms=at_ms, party=party, evidence=evidence,
                              link=rule.link or link)
