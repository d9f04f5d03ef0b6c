"""Words in, insights out: sentiment, keywords, talk metrics, coaching prompts. Pure."""

from coaching.call_coach import CallCoach, CallCoachError, CoachingProfile, default_profile
from coaching.keywords import KeywordMatcher, hotwords
from coaching.records import (
                              ActionItem,
                              CallSummary,
                              CoachingPrompt,
                              KeywordHit,
                              Objection,
                              SegmentError,
                              SegmentInput,
                              SentimentScore,
                              TalkMetrics,
                              WordTiming,
                              as_event,
)
from coaching.redaction import RedactedSpan, RedactionResult, Redactor, redact
from coaching.rule_set import RuleSet, RuleSetError, default_rule_set, load_rule_set

__all__ = [
    "ActionItem", "CallCoach", "CallCoachError", "CallSummary", "CoachingProfile",
    "CoachingPrompt", "KeywordHit", "KeywordMatcher", "Objection", "RedactedSpan",
    "RedactionResult", "Redactor", "RuleSet", "RuleSetError", "SegmentError", "SegmentInput",
    "SentimentScore", "TalkMetrics", "WordTiming", "as_event", "default_profile",
    "default_rule_set", "hotwords", "load_rule_set", "redact",
]
