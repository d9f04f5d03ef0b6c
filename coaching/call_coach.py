"""One call's coach: transcript segments in, insights out.

    profile = CoachingProfile(load_rule_set(org_json))   # once per organization
    coach = CallCoach(profile)                            # once per call
    coach.feed(segment)   -> [KeywordHit..., SentimentScore, TalkMetrics, CoachingPrompt...]
    coach.tick(now_ms)    -> [CoachingPrompt...]   (silence, checklist deadlines)
    coach.checklist_changes(now_ms) -> ChecklistState | None   (deadlines passing)
    coach.finish(end_ms)  -> CallSummary

Everything is synchronous and cheap (tens of µs to a few hundred µs per final
segment with VADER), so a coach can run inline on the event loop; the
optional embedding sentiment model is the exception (see sentiment.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from coaching.call_analytics import call_analytics
from coaching.checklist import ChecklistTracker
from coaching.keywords import KeywordMatcher, hotwords
from coaching.records import (
    CallSummary,
    ChecklistState,
    CoachingPrompt,
    KeywordHit,
    SegmentInput,
    SentimentScore,
    TalkMetrics,
)
from coaching.redaction import Redactor
from coaching.rule_set import RuleSet, default_rule_set, load_rule_set
from coaching.rules import RuleEngine
from coaching.sentiment import SentimentModel, SentimentTrend, default_model, label_of
from coaching.summary import Utterance, build_summary
from coaching.talk_metrics import TalkTracker
from coaching.tokens import segment_tokens

Insight = KeywordHit | SentimentScore | TalkMetrics | CoachingPrompt | ChecklistState


class CallCoachError(RuntimeError):
    """The coach was used out of order (e.g. fed after finish)."""


class CoachingProfile:
    """An organization's compiled coaching set-up, shared read-only by all its calls."""

    def __init__(self, rule_set: RuleSet | None = None,
                 sentiment_model: SentimentModel | None = None) -> None:
        self.rule_set = rule_set or default_rule_set()
        self.matcher = KeywordMatcher(self.rule_set)
        self.sentiment_model = sentiment_model or default_model()
        self.objection_categories = {c.name for c in self.rule_set.keywords if c.objection}
        self.hotwords = hotwords(self.rule_set)

    @classmethod
    def load(cls, source: Mapping[str, Any] | str | Path | None = None,
             sentiment_model: SentimentModel | None = None) -> CoachingProfile:
        """From an org's rule-set override (mapping, JSON text or file); raises RuleSetError."""
        return cls(load_rule_set(source), sentiment_model)


@cache
def default_profile() -> CoachingProfile:
    return CoachingProfile()


class CallCoach:
    def __init__(self, profile: CoachingProfile | RuleSet | None = None, *,
                 call_start_ms: int = 0, prompts_on_partials: bool = True) -> None:
        if profile is None:
            profile = default_profile()
        elif isinstance(profile, RuleSet):
            profile = CoachingProfile(profile)
        self.profile = profile
        rule_set = profile.rule_set
        self.call_start_ms = call_start_ms
        # keyword prompts from partials reach the rep a segment earlier; the final's hit
        # then falls inside the same (rule, keyword) cooldown and does not prompt again
        self.prompts_on_partials = prompts_on_partials
        self._tracker = TalkTracker(rule_set.fillers, int(rule_set.option("turn_gap_ms")),
                                    int(rule_set.option("backchannel_max_words")))
        self._trend = SentimentTrend(float(rule_set.option("sentiment_alpha")))
        self._engine = RuleEngine(rule_set, call_start_ms)
        self._checklist = ChecklistTracker(rule_set, call_start_ms)
        self._redactor = Redactor()
        self._seen: set[str] = set()
        self._hits: list[KeywordHit] = []
        self._utterances: list[Utterance] = []
        self._scores: list[SentimentScore] = []
        self._prompts: list[CoachingPrompt] = []  # every prompt the rep was shown
        self._last_ms = call_start_ms
        self._summary: CallSummary | None = None

    def use_profile(self, profile: CoachingProfile) -> None:
        """Coach the rest of the call with an edited profile (an admin changed the rule set).
        Talk metrics, sentiment and what already fired carry on; keywords match the new sets."""
        self.profile = profile
        self._engine.use_rule_set(profile.rule_set)
        # the checklist follows the edited rules; what was ticked stays ticked (the engine's)
        self._checklist.use_rule_set(profile.rule_set)

    @property
    def finished(self) -> bool:
        return self._summary is not None

    def sentiment_text(self, segment: SegmentInput | Mapping[str, Any] | Any) -> str | None:
        """The text ``feed`` would score for this segment, or None when it scores none (a
        partial, a repeat, no words). A caller on an event loop scores it in a worker thread
        and hands the score to ``feed(segment, sentiment=...)``."""
        segment = self._as_input(segment)
        if not segment.is_final or segment.segment_id in self._seen:
            return None
        text, tokens = segment_tokens(segment)
        if not any(t.norm[:1].isalnum() for t in tokens):
            return None
        return self._redactor.redact_tokens(text, tokens).text

    @staticmethod
    def _as_input(segment: SegmentInput | Mapping[str, Any] | Any) -> SegmentInput:
        if isinstance(segment, SegmentInput):
            return segment
        return SegmentInput.from_mapping(segment) if isinstance(segment, Mapping) \
            else SegmentInput.from_transcript(segment)

    def feed(self, segment: SegmentInput | Mapping[str, Any] | Any,
             sentiment: float | None = None) -> list[Insight]:
        """Insights from one segment.

        ``sentiment``: the profile model's score of ``sentiment_text(segment)``, computed by
        the caller; without it a final is scored here, inline.

        A final gives its keyword hits, sentiment, metrics and prompts, and the checklist
        when an item changed (or on the first final); a repeat of a final gives nothing. A
        partial gives only keyword prompts (when
        ``prompts_on_partials``), so a competitor named mid-sentence is coached
        before the sentence ends.

        Accepts a SegmentInput, a ``transcript.final``-shaped mapping, or any object
        with TranscriptSegment's attributes; a malformed one raises SegmentError.
        """
        if self._summary is not None:
            raise CallCoachError("the call's coach is finished; it takes no more segments")
        segment = self._as_input(segment)
        if segment.segment_id in self._seen:
            return []
        if not segment.is_final:
            if not self.prompts_on_partials:
                return []
            text, tokens = segment_tokens(segment)
            prompts = self._engine.on_keywords(
                self.profile.matcher.match_tokens(segment, text, tokens), partial=True)
            self._prompts.extend(prompts)
            return list(prompts)
        self._seen.add(segment.segment_id)
        self._last_ms = max(self._last_ms, segment.end_ms)
        text, tokens = segment_tokens(segment)
        redacted = self._redactor.redact_tokens(text, tokens).text
        norms = [t.norm for t in tokens if t.norm[:1].isalnum()]
        self._utterances.append(Utterance(segment.segment_id, segment.party, redacted,
                                          segment.start_ms, segment.end_ms))
        hits = self.profile.matcher.match_tokens(segment, text, tokens)
        self._hits.extend(hits)
        self._tracker.add(segment, norms)
        insights: list[Insight] = list(hits)
        prompts = self._engine.on_keywords(hits)
        if norms:
            value = sentiment if sentiment is not None \
                else self.profile.sentiment_model.score(redacted)
            trend = self._trend.update(segment.party, value, segment.end_ms, len(norms))
            score = SentimentScore(segment.segment_id, segment.party, round(value, 4),
                                   label_of(value), segment.end_ms, round(trend.value, 4),
                                   self.profile.sentiment_model.name)
            insights.append(score)
            self._scores.append(score)
            prompts += self._engine.on_sentiment(score, trend)
        metrics = self._tracker.snapshot()
        insights.append(metrics)
        prompts += self._engine.on_metrics(metrics)
        self._prompts.extend(prompts)
        insights.extend(prompts)
        checklist = self.checklist_changes(self._last_ms)
        if checklist is not None:
            insights.append(checklist)
        return insights

    def tick(self, now_ms: int, *, speech_active: bool = False) -> list[CoachingPrompt]:
        """Time-based prompts (silence, checklist deadlines); call every second or so.

        ``speech_active``: someone is speaking, or speech is still being transcribed, so
        the transcript is behind the audio and the call is not silent (no silence prompt).
        """
        if self._summary is not None:
            return []
        self._last_ms = max(self._last_ms, now_ms)
        last_speech = None if speech_active else self._tracker.last_speech_end_ms
        prompts = self._engine.on_tick(now_ms, last_speech)
        self._prompts.extend(prompts)
        return prompts

    def checklist(self, now_ms: int | None = None) -> ChecklistState:
        """Every checklist item's status at ``now_ms`` (default: the latest time seen)."""
        return self._checklist.state(self._engine.checklist_done,
                                     self._last_ms if now_ms is None else now_ms)

    def checklist_changes(self, now_ms: int) -> ChecklistState | None:
        """The checklist when an item's status changed since the last one given (the first
        call gives it as it stands); None when unchanged or the rule set has no checklist."""
        if self._checklist.empty or self._summary is not None:
            return None
        return self._checklist.update(self._engine.checklist_done, max(self._last_ms, now_ms))

    def metrics(self) -> TalkMetrics:
        return self._tracker.snapshot()

    def finish(self, end_ms: int | None = None) -> CallSummary:
        """The call's summary (idempotent: a second call returns the same summary)."""
        if self._summary is not None:
            return self._summary
        end = max(self._last_ms, end_ms or 0)
        metrics = self._tracker.final(end) if self._utterances else None
        utterances = sorted(self._utterances, key=lambda u: (u.start_ms, u.end_ms))
        hits = sorted(self._hits, key=lambda h: h.start_ms)
        missed = self._engine.missed_checklist()
        rule_set = self.profile.rule_set
        summary = build_summary(utterances, hits, self.profile.objection_categories,
                                metrics, self._trend.history(), missed, end - self.call_start_ms)
        analytics = call_analytics(
            utterances, hits, self._scores, self._prompts, {r.id: r for r in rule_set.rules},
            objection_categories=self.profile.objection_categories,
            checklist_total=sum(1 for r in rule_set.rules if r.trigger == "checklist"),
            checklist_missed=len(missed), patience_answers=self._tracker.patience_answers,
            follow_s=float(rule_set.option("prompt_follow_s")))
        self._summary = replace(summary, analytics=analytics.to_payload())
        return self._summary
