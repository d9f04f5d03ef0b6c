# Long module: the whole live-event contract in one place, one small record per event type.
"""The live call events on the bus: their type names and payload shapes, defined once.

A live call publishes these events (voice_server: the call session and the
live path of ``CallIntelligence``); the CRM writer (crm_core/calls/events.py)
persists some of them and the browser live feed (voice_server/live_feed.py)
forwards them all. Each payload is a frozen dataclass with ``to_payload``
(the JSON-ready dict published on the bus) and ``from_payload`` (the record
back from such a dict). The session adds ``call_id`` to every payload when it
publishes, so ``call_id`` is not part of these records and ``from_payload``
ignores it (and any other key it does not know).

The contract lives in crm_core because both sides must import it: the
producer (voice_server may import every room) and the consumer (crm_core may
import only storage). storage holds the bus itself, which carries any event
and knows no call. coaching imports nothing of ours, so its ``as_event``
spells the insight names itself; tests check that they agree with these.

``from_payload`` is lenient where the CRM has always been: optional keys
default, numbers and text are coerced, and a missing required key raises
``KeyError`` (malformed shapes ``TypeError``/``ValueError``), which the
writer treats as an event to drop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

CALL_STARTED = "call.started"
CALL_ENDED = "call.ended"
CALL_DTMF = "call.dtmf"
CALL_HOLD = "call.hold"
TRANSCRIPT_PARTIAL = "transcript.partial"
TRANSCRIPT_FINAL = "transcript.final"
TRANSCRIPT_RETRACTED = "transcript.retracted"
INSIGHT_KEYWORD = "insight.keyword"
INSIGHT_SENTIMENT = "insight.sentiment"
INSIGHT_METRICS = "insight.metrics"
INSIGHT_SUMMARY = "insight.summary"
INSIGHT_CHECKLIST = "insight.checklist"
COACHING_PROMPT = "coaching.prompt"

# Bus patterns that together match every live call event.
ALL_PATTERNS = ("call.*", "transcript.*", "coaching.*", "insight.*")


def json_ready(value: Any) -> Any:
    """JSON-ready: mappings with text keys, lists for tuples, all the way down."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


# -- the call itself ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallStartedEvent:
    event_type: ClassVar[str] = CALL_STARTED

    carrier: str
    direction: str
    rep_id: str | None = None
    lead_id: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"carrier": self.carrier, "direction": self.direction, "rep_id": self.rep_id,
                "lead_id": self.lead_id}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CallStartedEvent:
        return cls(str(payload["carrier"]), str(payload["direction"]),
                   _optional_text(payload.get("rep_id")), _optional_text(payload.get("lead_id")))


@dataclass(frozen=True, slots=True)
class CallEndedEvent:
    event_type: ClassVar[str] = CALL_ENDED

    abnormal: bool = False
    reason: str = ""
    samples: Mapping[str, int] = field(default_factory=dict)  # party -> samples received

    def to_payload(self) -> dict[str, Any]:
        return {"abnormal": self.abnormal, "reason": self.reason, "samples": dict(self.samples)}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CallEndedEvent:
        samples = payload.get("samples") or {}
        return cls(bool(payload.get("abnormal")), str(payload.get("reason") or ""),
                   {str(k): int(v) for k, v in samples.items()})


@dataclass(frozen=True, slots=True)
class CallDtmfEvent:
    event_type: ClassVar[str] = CALL_DTMF

    digit: str
    at_ms: int
    duration_ms: int = 0

    def to_payload(self) -> dict[str, Any]:
        return {"digit": self.digit, "at_ms": self.at_ms, "duration_ms": self.duration_ms}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CallDtmfEvent:
        return cls(str(payload["digit"]), int(payload["at_ms"]),
                   int(payload.get("duration_ms") or 0))


@dataclass(frozen=True, slots=True)
class CallHoldEvent:
    event_type: ClassVar[str] = CALL_HOLD

    on_hold: bool

    def to_payload(self) -> dict[str, Any]:
        return {"on_hold": self.on_hold}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> CallHoldEvent:
        return cls(bool(payload["on_hold"]))


# -- the transcript ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptWord:
    text: str               # "[redacted]" where the word was PII
    start_ms: int
    end_ms: int
    probability: float

    def to_payload(self) -> dict[str, Any]:
        return {"text": self.text, "start_ms": self.start_ms, "end_ms": self.end_ms,
                "probability": self.probability}

    @classmethod
    def from_payload(cls, word: Mapping[str, Any]) -> TranscriptWord:
        return cls(str(word.get("text", "")), int(word.get("start_ms", 0)),
                   int(word.get("end_ms", 0)), float(word.get("probability", 0.0)))


@dataclass(frozen=True, slots=True)
class TranscriptEvent:
    """One PII-masked transcript segment: ``transcript.partial`` or, when final, ``.final``."""

    segment_id: str
    party: str              # the track it was heard on: rep, customer or mixed
    start_ms: int
    end_ms: int
    text: str
    speaker: str | None = None   # who spoke: the party, or a label on a mixed track
    revision: int = 0
    is_final: bool = True
    stable_words: int = 0
    words: tuple[TranscriptWord, ...] = ()
    redacted: tuple[str, ...] = ()          # the kinds of PII masked in it
    text_raw: str | None = None             # the unmasked text, where the organization keeps it
    sentiment: float | None = None          # a score the CRM stores with the segment, if sent

    @property
    def event_type(self) -> str:
        return TRANSCRIPT_FINAL if self.is_final else TRANSCRIPT_PARTIAL

    @property
    def segment_key(self) -> str:
        """The transcript line as the CRM keys it (what a coaching prompt points at)."""
        return f"{self.party}:{self.segment_id}"

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "segment_id": self.segment_id,
            "party": self.party,
            "speaker": self.speaker,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "text": self.text,
            "revision": self.revision,
            "is_final": self.is_final,
            "stable_words": self.stable_words,
            "words": [w.to_payload() for w in self.words],
            "redacted": list(self.redacted),
        }
        # Optional keys are on the wire only when they carry something.
        if self.text_raw is not None:
            payload["text_raw"] = self.text_raw
        if self.sentiment is not None:
            payload["sentiment"] = self.sentiment
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> TranscriptEvent:
        return cls(
            segment_id=str(payload["segment_id"]),
            party=str(payload["party"]),
            start_ms=int(payload["start_ms"]),
            end_ms=int(payload["end_ms"]),
            text=str(payload["text"]),
            speaker=payload.get("speaker"),
            revision=int(payload.get("revision") or 0),
            is_final=bool(payload.get("is_final", True)),
            stable_words=int(payload.get("stable_words") or 0),
            words=tuple(TranscriptWord.from_payload(w) for w in payload.get("words") or []),
            redacted=tuple(str(k) for k in payload.get("redacted") or ()),
            text_raw=payload.get("text_raw"),
            sentiment=payload.get("sentiment"),
        )


@dataclass(frozen=True, slots=True)
class TranscriptRetractedEvent:
    """A segment shown as a partial turned out to be noise: the browser removes its line."""

    event_type: ClassVar[str] = TRANSCRIPT_RETRACTED

    segment_id: str
    party: str

    def to_payload(self) -> dict[str, Any]:
        return {"segment_id": self.segment_id, "party": self.party}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> TranscriptRetractedEvent:
        return cls(str(payload["segment_id"]), str(payload["party"]))


# -- insights ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeywordEvent:
    """A phrase of a keyword category heard in a segment."""

    event_type: ClassVar[str] = INSIGHT_KEYWORD

    segment_id: str
    party: str
    category: str
    keyword: str            # the canonical phrase from the rule set
    matched_text: str       # the words as the transcript spelled them
    start_ms: int
    end_ms: int
    word_start: int         # word indices into the segment, end exclusive
    word_end: int
    method: str             # exact | stem | fuzzy | phonetic
    score: float
    link: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"segment_id": self.segment_id, "party": self.party, "category": self.category,
                "keyword": self.keyword, "matched_text": self.matched_text,
                "start_ms": self.start_ms, "end_ms": self.end_ms, "word_start": self.word_start,
                "word_end": self.word_end, "method": self.method, "score": self.score,
                "link": self.link}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> KeywordEvent:
        return cls(str(payload["segment_id"]), str(payload["party"]), str(payload["category"]),
                   str(payload["keyword"]), str(payload["matched_text"]),
                   int(payload["start_ms"]), int(payload["end_ms"]), int(payload["word_start"]),
                   int(payload["word_end"]), str(payload["method"]), float(payload["score"]),
                   _optional_text(payload.get("link")))


@dataclass(frozen=True, slots=True)
class SentimentEvent:
    event_type: ClassVar[str] = INSIGHT_SENTIMENT

    segment_id: str
    party: str
    score: float            # -1 (negative) .. +1 (positive)
    label: str              # negative | neutral | positive
    trend: float            # the party's smoothed score after this segment
    at_ms: int
    model: str

    def to_payload(self) -> dict[str, Any]:
        return {"segment_id": self.segment_id, "party": self.party, "score": self.score,
                "label": self.label, "trend": self.trend, "at_ms": self.at_ms,
                "model": self.model}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SentimentEvent:
        return cls(str(payload["segment_id"]), str(payload["party"]), float(payload["score"]),
                   str(payload["label"]), float(payload["trend"]), int(payload["at_ms"]),
                   str(payload["model"]))


@dataclass(frozen=True, slots=True)
class PartyPair:
    """One figure for the rep and one for the customer."""

    rep: Any
    customer: Any

    def to_payload(self) -> dict[str, Any]:
        return {"rep": self.rep, "customer": self.customer}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> PartyPair:
        return cls(payload["rep"], payload["customer"])


@dataclass(frozen=True, slots=True)
class MetricsEvent:
    """The call's talk metrics so far (live), or over the whole call (in the summary)."""

    event_type: ClassVar[str] = INSIGHT_METRICS

    at_ms: int
    talk_ratio: PartyPair               # shares of all talk, 0..1
    talk_ms: PartyPair
    longest_monologue_ms: PartyPair     # each party's longest turn
    current_monologue_party: str | None
    current_monologue_ms: int
    interruptions: PartyPair
    wpm: PartyPair
    fillers: PartyPair
    silence_ms: int
    longest_silence_ms: int
    patience_ms: float                  # mean gap before the rep answers the customer

    def to_payload(self) -> dict[str, Any]:
        return {
            "at_ms": self.at_ms,
            "talk_ratio": self.talk_ratio.to_payload(),
            "talk_ms": self.talk_ms.to_payload(),
            "longest_monologue_ms": self.longest_monologue_ms.to_payload(),
            "current_monologue": {"party": self.current_monologue_party,
                                  "ms": self.current_monologue_ms},
            "interruptions": self.interruptions.to_payload(),
            "wpm": self.wpm.to_payload(),
            "fillers": self.fillers.to_payload(),
            "silence_ms": self.silence_ms,
            "longest_silence_ms": self.longest_silence_ms,
            "patience_ms": self.patience_ms,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> MetricsEvent:
        monologue = payload["current_monologue"]
        return cls(
            at_ms=int(payload["at_ms"]),
            talk_ratio=PartyPair.from_payload(payload["talk_ratio"]),
            talk_ms=PartyPair.from_payload(payload["talk_ms"]),
            longest_monologue_ms=PartyPair.from_payload(payload["longest_monologue_ms"]),
            current_monologue_party=monologue["party"],
            current_monologue_ms=int(monologue["ms"]),
            interruptions=PartyPair.from_payload(payload["interruptions"]),
            wpm=PartyPair.from_payload(payload["wpm"]),
            fillers=PartyPair.from_payload(payload["fillers"]),
            silence_ms=int(payload["silence_ms"]),
            longest_silence_ms=int(payload["longest_silence_ms"]),
            patience_ms=float(payload["patience_ms"]),
        )


@dataclass(frozen=True, slots=True)
class PromptEvent:
    """A coaching prompt card shown to the rep; the payload is ``{"prompt": {...}}``."""

    event_type: ClassVar[str] = COACHING_PROMPT

    rule_id: str
    kind: str               # the rule's trigger: keyword, metric, sentiment, silence, checklist
    severity: str
    title: str
    body: str
    at_ms: int
    party: str | None = None
    evidence: tuple[str, ...] = ()
    link: str | None = None
    # rule@time, stable per rule and moment: the browser de-duplicates replays by it
    id: str | None = None
    # the transcript line that set it off (TranscriptEvent.segment_key); None for clock prompts
    segment_key: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"prompt": {
            "rule_id": self.rule_id, "kind": self.kind, "severity": self.severity,
            "title": self.title, "body": self.body, "at_ms": self.at_ms, "party": self.party,
            "evidence": list(self.evidence), "link": self.link, "id": self.id,
            "segment_key": self.segment_key,
        }}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> PromptEvent:
        """Values are taken as sent (the CRM checks their types); the shape is checked here."""
        prompt = payload["prompt"]
        if not isinstance(prompt, dict):
            raise TypeError("prompt must be an object")
        evidence = prompt.get("evidence") or []
        if not isinstance(evidence, list):
            raise TypeError("evidence must be a list")
        return cls(rule_id=prompt["rule_id"], kind=prompt["kind"], severity=prompt["severity"],
                   title=prompt["title"], body=prompt.get("body", ""), at_ms=int(prompt["at_ms"]),
                   party=prompt.get("party"), evidence=tuple(evidence), link=prompt.get("link"),
                   id=prompt.get("id"), segment_key=prompt.get("segment_key"))


@dataclass(frozen=True, slots=True)
class ChecklistEntry:
    id: str                 # the checklist rule's id
    label: str
    status: str             # pending | done | missed
    due_ms: int
    done_at_ms: int | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "status": self.status,
                "due_ms": self.due_ms, "done_at_ms": self.done_at_ms}

    @classmethod
    def from_payload(cls, item: Mapping[str, Any]) -> ChecklistEntry:
        done = item.get("done_at_ms")
        return cls(str(item["id"]), str(item["label"]), str(item["status"]),
                   int(item["due_ms"]), None if done is None else int(done))


@dataclass(frozen=True, slots=True)
class ChecklistEvent:
    """The call's whole checklist, published when an item is ticked or its deadline passes."""

    event_type: ClassVar[str] = INSIGHT_CHECKLIST

    items: tuple[ChecklistEntry, ...]
    at_ms: int

    def to_payload(self) -> dict[str, Any]:
        return {"items": [i.to_payload() for i in self.items], "at_ms": self.at_ms}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ChecklistEvent:
        return cls(tuple(ChecklistEntry.from_payload(i) for i in payload["items"]),
                   int(payload["at_ms"]))


@dataclass(frozen=True, slots=True)
class SummaryActionItem:
    owner: str              # rep | customer | both
    text: str
    at_ms: int
    due: str | None = None

    def to_payload(self) -> dict[str, Any]:
        return {"owner": self.owner, "text": self.text, "at_ms": self.at_ms, "due": self.due}

    @classmethod
    def from_payload(cls, item: Mapping[str, Any]) -> SummaryActionItem:
        return cls(str(item["owner"]), str(item["text"]), int(item["at_ms"]),
                   _optional_text(item.get("due")))


@dataclass(frozen=True, slots=True)
class SummaryObjection:
    category: str
    keyword: str
    text: str               # the sentence that carried it
    at_ms: int

    def to_payload(self) -> dict[str, Any]:
        return {"category": self.category, "keyword": self.keyword, "text": self.text,
                "at_ms": self.at_ms}

    @classmethod
    def from_payload(cls, item: Mapping[str, Any]) -> SummaryObjection:
        return cls(str(item["category"]), str(item["keyword"]), str(item["text"]),
                   int(item["at_ms"]))


@dataclass(frozen=True, slots=True)
class SummaryEvent:
    """The call's summary, published once before ``call.ended``."""

    event_type: ClassVar[str] = INSIGHT_SUMMARY

    text: str
    key_points: tuple[str, ...] = ()
    action_items: tuple[SummaryActionItem, ...] = ()
    next_steps: tuple[SummaryActionItem, ...] = ()
    objections: tuple[SummaryObjection, ...] = ()
    competitors: tuple[str, ...] = ()
    keyword_counts: Mapping[str, int] = field(default_factory=dict)     # category -> hits
    metrics: MetricsEvent | None = None
    # party -> (at_ms, smoothed sentiment) points
    sentiment_trend: Mapping[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)
    checklist_missed: tuple[str, ...] = ()
    duration_ms: int = 0
    signals: Mapping[str, Any] = field(default_factory=dict)    # deal signals, JSON values
    abnormal: bool = False
    # team analytics' per-call figures (coaching/call_analytics.py), JSON values
    analytics: Mapping[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "key_points": list(self.key_points),
            "action_items": [i.to_payload() for i in self.action_items],
            "next_steps": [i.to_payload() for i in self.next_steps],
            "objections": [o.to_payload() for o in self.objections],
            "competitors": list(self.competitors),
            "keyword_counts": dict(self.keyword_counts),
            "metrics": self.metrics.to_payload() if self.metrics is not None else None,
            "sentiment_trend": {party: [list(point) for point in points]
                                for party, points in self.sentiment_trend.items()},
            "checklist_missed": list(self.checklist_missed),
            "duration_ms": self.duration_ms,
            "signals": json_ready(self.signals),
            "abnormal": self.abnormal,
            "analytics": json_ready(self.analytics),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> SummaryEvent:
        metrics = payload.get("metrics")
        trend = payload.get("sentiment_trend") or {}
        return cls(
            text=str(payload["text"]),
            key_points=tuple(payload.get("key_points") or ()),
            action_items=tuple(SummaryActionItem.from_payload(i)
                               for i in payload.get("action_items") or ()),
            next_steps=tuple(SummaryActionItem.from_payload(i)
                             for i in payload.get("next_steps") or ()),
            objections=tuple(SummaryObjection.from_payload(o)
                             for o in payload.get("objections") or ()),
            competitors=tuple(payload.get("competitors") or ()),
            keyword_counts={str(k): int(v)
                            for k, v in (payload.get("keyword_counts") or {}).items()},
            metrics=MetricsEvent.from_payload(metrics) if metrics is not None else None,
            sentiment_trend={str(party): tuple((int(at), float(score)) for at, score in points)
                             for party, points in trend.items()},
            checklist_missed=tuple(payload.get("checklist_missed") or ()),
            duration_ms=int(payload.get("duration_ms") or 0),
            signals=dict(payload.get("signals") or {}),
            abnormal=bool(payload.get("abnormal")),
            analytics=dict(payload.get("analytics") or {}),
        )


LiveEvent = (CallStartedEvent | CallEndedEvent | CallDtmfEvent | CallHoldEvent | TranscriptEvent
             | TranscriptRetractedEvent | KeywordEvent | SentimentEvent | MetricsEvent
             | PromptEvent | SummaryEvent | ChecklistEvent)

# The record for each event type, for reading any live event back from the bus.
EVENT_RECORDS: dict[str, type] = {
    CALL_STARTED: CallStartedEvent,
    CALL_ENDED: CallEndedEvent,
    CALL_DTMF: CallDtmfEvent,
    CALL_HOLD: CallHoldEvent,
    TRANSCRIPT_PARTIAL: TranscriptEvent,
    TRANSCRIPT_FINAL: TranscriptEvent,
    TRANSCRIPT_RETRACTED: TranscriptRetractedEvent,
    INSIGHT_KEYWORD: KeywordEvent,
    INSIGHT_SENTIMENT: SentimentEvent,
    INSIGHT_METRICS: MetricsEvent,
    INSIGHT_SUMMARY: SummaryEvent,
    INSIGHT_CHECKLIST: ChecklistEvent,
    COACHING_PROMPT: PromptEvent,
}


def from_bus(event_type: str, payload: Mapping[str, Any]) -> LiveEvent:
    """The record of one live event's payload; ``KeyError`` for a type this contract lacks."""
    return EVENT_RECORDS[event_type].from_payload(payload)
