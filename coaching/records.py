"""The small immutable records that flow into and out of coaching.

Coaching imports nothing of ours, so it cannot take ``media.transcript``'s
``TranscriptSegment``; ``SegmentInput.from_transcript`` copies any object
with the same field names (duck-typed) into our own record instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PARTIES = ("rep", "customer")
SEVERITIES = ("info", "warning", "critical")


class SegmentError(ValueError):
    """A transcript segment handed to coaching is malformed (caller's bug or bad input)."""


@dataclass(frozen=True, slots=True)
class WordTiming:
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class SegmentInput:
    """One transcript segment of one party, times on the call clock (ms)."""

    segment_id: str
    party: str
    text: str
    start_ms: int
    end_ms: int
    words: tuple[WordTiming, ...] = ()
    is_final: bool = True

    def __post_init__(self) -> None:
        if self.party not in PARTIES:
            raise SegmentError(f"segment {self.segment_id!r}: party must be one of {PARTIES}, "
                               f"got {self.party!r}")
        if not isinstance(self.text, str):
            raise SegmentError(f"segment {self.segment_id!r}: text must be a string")
        for name in ("start_ms", "end_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SegmentError(f"segment {self.segment_id!r}: {name} must be an int >= 0, "
                                   f"got {value!r}")
        if self.end_ms < self.start_ms:
            raise SegmentError(f"segment {self.segment_id!r}: end_ms {self.end_ms} is before "
                               f"start_ms {self.start_ms}")
        for word in self.words:
            if not isinstance(word, WordTiming) or word.end_ms < word.start_ms:
                raise SegmentError(f"segment {self.segment_id!r}: bad word timing {word!r}")

    @classmethod
    def build(cls, segment_id: str, party: str, text: str, start_ms: int, end_ms: int,
              words: Any = (), is_final: bool = True) -> SegmentInput:
        """Build from loose input: words as WordTiming, (text, start, end) tuples or mappings."""
        return cls(str(segment_id), _party_name(party), text, _as_ms(start_ms, "start_ms"),
                   _as_ms(end_ms, "end_ms"), tuple(_word(w) for w in (words or ())),
                   bool(is_final))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SegmentInput:
        """From a ``transcript.final``-shaped payload (segment_key/segment_id, party, ...)."""
        try:
            segment_id = data.get("segment_id", data.get("segment_key"))
            return cls.build(segment_id, data["party"], data.get("text", ""), data["start_ms"],
                             data["end_ms"], data.get("words") or (), data.get("is_final", True))
        except KeyError as exc:
            raise SegmentError(f"segment is missing field {exc.args[0]!r}") from None

    @classmethod
    def from_transcript(cls, segment: Any) -> SegmentInput:
        """From any object with TranscriptSegment's attributes (media.transcript's record)."""
        try:
            return cls.build(segment.segment_id, segment.party, segment.text, segment.start_ms,
                             segment.end_ms, getattr(segment, "words", ()) or (),
                             getattr(segment, "is_final", True))
        except AttributeError as exc:
            raise SegmentError(f"not a transcript segment ({type(segment).__name__}): "
                               f"{exc}") from None


def _party_name(party: Any) -> str:
    # media's Party is an enum whose values are "rep"/"customer"; accept it without importing it
    value = getattr(party, "value", party)
    return str(value).lower() if isinstance(value, str) else str(value)


def _as_ms(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise SegmentError(f"{name} must be a number of milliseconds, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise SegmentError(f"{name} must be a number of milliseconds, got {value!r}")
    return value


def _word(word: Any) -> WordTiming:
    if isinstance(word, WordTiming):
        return word
    try:
        if isinstance(word, Mapping):
            text, start, end = word["text"], word["start_ms"], word["end_ms"]
        elif isinstance(word, (tuple, list)):
            text, start, end = word[0], word[1], word[2]
        else:
            text, start, end = word.text, word.start_ms, word.end_ms
    except (KeyError, IndexError, AttributeError, TypeError):
        raise SegmentError(f"word must be (text, start_ms, end_ms), got {word!r}") from None
    if not isinstance(text, str):
        raise SegmentError(f"word text must be a string, got {text!r}")
    return WordTiming(text, _as_ms(start, "word start_ms"), _as_ms(end, "word end_ms"))


@dataclass(frozen=True, slots=True)
class KeywordHit:
    """A phrase of a rule set's keyword category found in what a party said."""

    segment_id: str
    party: str
    category: str
    keyword: str            # the canonical phrase from the rule set
    matched_text: str       # the words as the transcript spelled them
    start_ms: int
    end_ms: int
    word_start: int         # token indices into the segment, end exclusive
    word_end: int
    method: str             # "exact" | "stem" | "fuzzy" | "phonetic"
    score: float            # 1.0 for exact/stem, the similarity otherwise
    link: str | None = None


@dataclass(frozen=True, slots=True)
class SentimentScore:
    segment_id: str
    party: str
    score: float            # -1 (negative) .. +1 (positive)
    label: str              # "negative" | "neutral" | "positive"
    at_ms: int
    trend: float            # the party's smoothed (EWMA) score after this segment
    model: str


@dataclass(frozen=True, slots=True)
class TalkMetrics:
    """The call's talk metrics so far (live) or over the whole call (final)."""

    at_ms: int
    rep_talk_ms: int
    customer_talk_ms: int
    talk_ratio: float               # rep's share of all talk, 0..1 (0.5 = balanced)
    longest_monologue_ms: int       # the longer of the two parties' longest turns
    longest_monologue_party: str | None
    current_monologue_ms: int       # length of the turn in progress (live rules use it)
    current_monologue_party: str | None
    rep_interruptions: int          # times the rep started while the customer was speaking
    customer_interruptions: int
    rep_wpm: float
    customer_wpm: float
    rep_fillers: int
    customer_fillers: int
    filler_counts: Mapping[str, int]
    silence_ms: int                 # total time nobody spoke (between first and last speech)
    longest_silence_ms: int
    patience_ms: float              # mean gap before the rep answers the customer
    rep_turns: int
    customer_turns: int
    rep_longest_monologue_ms: int   # each party's longest turn
    customer_longest_monologue_ms: int


@dataclass(frozen=True, slots=True)
class CoachingPrompt:
    rule_id: str
    kind: str               # the rule's trigger: keyword, metric, sentiment, silence, checklist
    severity: str
    title: str
    body: str
    at_ms: int
    party: str | None
    evidence: tuple[str, ...] = ()
    link: str | None = None


@dataclass(frozen=True, slots=True)
class ActionItem:
    owner: str              # "rep" | "customer" | "both"
    text: str
    at_ms: int
    due: str | None = None


@dataclass(frozen=True, slots=True)
class Objection:
    category: str
    keyword: str
    text: str               # the sentence that carried it
    at_ms: int


@dataclass(frozen=True, slots=True)
class CallSummary:
    text: str
    key_points: tuple[str, ...]
    action_items: tuple[ActionItem, ...]
    next_steps: tuple[ActionItem, ...]
    objections: tuple[Objection, ...]
    competitors: tuple[str, ...]
    keyword_counts: Mapping[str, int]        # category -> hits
    metrics: TalkMetrics | None
    sentiment_trend: Mapping[str, tuple[tuple[int, float], ...]]   # party -> (at_ms, trend)
    checklist_missed: tuple[str, ...] = ()
    duration_ms: int = 0
    signals: Mapping[str, Any] = field(default_factory=dict)       # deal signals for the CRM
    # team analytics' figures (coaching/call_analytics.py CallAnalytics, JSON-ready)
    analytics: Mapping[str, Any] = field(default_factory=dict)


CHECKLIST_STATUSES = ("pending", "done", "missed")


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One checklist rule of the organization's rule set, as the call stands."""

    id: str                     # the rule's id
    label: str                  # what the rep must do, e.g. "Recording disclosure"
    status: str                 # pending | done | missed (deadline passed, not yet done)
    due_ms: int                 # the deadline on the call clock
    done_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ChecklistState:
    """Every checklist item of the call, published whenever one of them changes."""

    items: tuple[ChecklistItem, ...]
    at_ms: int

    @property
    def done(self) -> int:
        return sum(1 for item in self.items if item.status == "done")


# Bus event type per insight record. These are the live event names of
# crm_core/calls/live_events.py, spelled here because coaching imports nothing of ours.
EVENT_TYPES: dict[type, str] = {
    KeywordHit: "insight.keyword",
    SentimentScore: "insight.sentiment",
    TalkMetrics: "insight.metrics",
    CoachingPrompt: "coaching.prompt",
    CallSummary: "insight.summary",
    ChecklistState: "insight.checklist",
}


def as_event(record: Any) -> tuple[str, dict[str, Any]]:
    """(event_type, JSON-ready payload) for an insight record; the caller adds call_id."""
    try:
        event_type = EVENT_TYPES[type(record)]
    except KeyError:
        raise TypeError(f"not a coaching insight record: {type(record).__name__}") from None
    return event_type, _plain(dataclasses.asdict(record))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
