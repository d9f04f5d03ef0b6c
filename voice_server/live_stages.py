"""The stages of a live call's path, each with one job; ``CallIntelligence`` wires them.

Records flow one way::

    AudioFrame ──▶ Transcription ──TranscriptSegment──▶ SpeakerLabelling (speaker_labels.py)
        ──LabelledSegment──▶ PiiRedaction ──RedactedSegment──▶ Coaching ──▶ insight events

* ``Transcription`` runs a ``StreamingTranscriber`` per party on the shared
  ``SpeechModelPool`` and hands every segment it reads downstream;
* ``SpeakerLabelling`` says who spoke each segment (the track's party, or a
  voice label on a mixed track);
* ``PiiRedaction`` masks PII in the text and words, shapes the transcript
  event, and tells its listeners (the recorder) which spans to silence;
* ``Coaching`` feeds the organization's ``CallCoach`` and turns its records
  into the live events of crm_core/calls/live_events.py.

No stage publishes: they return records and events, and the wiring publishes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from coaching.call_coach import CallCoach, CoachingProfile
from coaching.records import (
    CallSummary,
    ChecklistState,
    CoachingPrompt,
    KeywordHit,
    SegmentInput,
    SentimentScore,
    TalkMetrics,
    WordTiming,
)
from coaching.redaction import RedactedSpan, Redactor
from crm_core.calls.live_events import (
    ChecklistEntry,
    ChecklistEvent,
    KeywordEvent,
    LiveEvent,
    MetricsEvent,
    PartyPair,
    PromptEvent,
    SentimentEvent,
    SummaryActionItem,
    SummaryEvent,
    SummaryObjection,
    TranscriptEvent,
    TranscriptWord,
    json_ready,
)
from media.frames import AudioFrame, Party
from media.stt.pool import SpeechModelPool
from media.stt.streaming import StreamingTranscriber
from media.transcript import TranscriptSegment
from voice_server.logs import call_id_var

log = logging.getLogger(__name__)

REDACTED_WORD = "[redacted]"
COACHED_PARTIES = (Party.REP.value, Party.CUSTOMER.value)

# Redacted spans are handed to whoever silences the recording (the recorder).
PiiListener = Callable[[list[RedactedSpan]], None]


# -- records between the stages ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelledSegment:
    """A transcript segment and who spoke it: its party, or a label on a mixed track."""

    segment: TranscriptSegment
    speaker: str

    @property
    def coached(self) -> bool:
        """Coaching reasons about the rep and the customer: another voice is only transcribed."""
        return self.speaker in COACHED_PARTIES


@dataclass(frozen=True, slots=True)
class RedactedSegment:
    """A labelled segment after PII redaction: what is published and what coaching reads."""

    labelled: LabelledSegment
    text_input: SegmentInput                # the unmasked words, as coaching takes them
    spans: tuple[RedactedSpan, ...]
    event: TranscriptEvent                  # the masked transcript line for the bus

    @property
    def coached(self) -> bool:
        return self.labelled.coached


# -- transcription -----------------------------------------------------------------------------

SegmentSink = Callable[[TranscriptSegment], Awaitable[None]]
# (party, stream id) -> the transcriber of that party's audio
TranscriberFactory = Callable[[str, str], StreamingTranscriber]


class Transcription:
    """One transcriber per party; every segment read goes to ``sink``."""

    def __init__(self, call_id: str, new_transcriber: TranscriberFactory,
                 sink: SegmentSink) -> None:
        self._call_id = call_id
        self._new_transcriber = new_transcriber
        self._sink = sink
        self._transcribers: dict[str, StreamingTranscriber] = {}
        self._readers: list[asyncio.Task] = []
        self._segments_in_flight = 0  # read from a transcriber, not yet through the sink
        self.last_ms = 0              # the end of the latest audio pushed, on the call clock

    @classmethod
    def on_pool(cls, call_id: str, pool: SpeechModelPool, sink: SegmentSink, *,
                hotwords: str | None = None) -> Transcription:
        """Streaming transcribers on the server's shared speech model pool."""
        def new_transcriber(party: str, stream_id: str) -> StreamingTranscriber:
            return StreamingTranscriber(party, pool, stream_id=stream_id,
                                        hotwords=hotwords or None)
        return cls(call_id, new_transcriber, sink)

    @property
    def speech_active(self) -> bool:
        """Someone is speaking, or what they said is still on its way through the stages."""
        return self._segments_in_flight > 0 or any(
            t.speech_in_progress for t in self._transcribers.values())

    def push(self, frame: AudioFrame) -> None:
        party = str(frame.party)
        transcriber = self._transcribers.get(party)
        if transcriber is None:
            transcriber = self._start_party(party)
        self.last_ms = max(self.last_ms, int(frame.end_ms))
        transcriber.push(frame)

    async def close(self) -> None:
        """Decode the utterances in progress (the last words are kept) and drain the readers."""
        await asyncio.gather(*(t.close() for t in self._transcribers.values()),
                             return_exceptions=True)
        await asyncio.gather(*self._readers, return_exceptions=True)

    def _start_party(self, party: str) -> StreamingTranscriber:
        transcriber = self._new_transcriber(party, f"{self._call_id}:{party}")
        self._transcribers[party] = transcriber
        self._readers.append(asyncio.create_task(self._read(transcriber),
                                                 name=f"stt:{self._call_id}:{party}"))
        return transcriber

    async def _read(self, transcriber: StreamingTranscriber) -> None:
        token = call_id_var.set(self._call_id)
        try:
            async for segment in transcriber:
                self._segments_in_flight += 1
                try:
                    await self._sink(segment)
                except Exception:  # one bad segment must not stop the call's transcript
                    log.exception("could not process segment %s", segment.segment_id)
                finally:
                    self._segments_in_flight -= 1
        finally:
            call_id_var.reset(token)


# -- PII redaction -----------------------------------------------------------------------------


class PiiRedaction:
    """Masks PII in a segment's text and words; reports a final's spans to its listeners."""

    def __init__(self, *, keep_raw_text: bool = False) -> None:
        self._redactor = Redactor()
        self._keep_raw_text = keep_raw_text  # the organization keeps unmasked text beside it
        self.listeners: list[PiiListener] = []

    def redact(self, labelled: LabelledSegment) -> RedactedSegment:
        segment = labelled.segment
        text_input = SegmentInput(
            segment_id=segment.segment_id,
            # SegmentInput knows only the rep and the customer; another voice is not coached
            party=labelled.speaker if labelled.coached else Party.CUSTOMER.value,
            text=segment.text, start_ms=segment.start_ms, end_ms=segment.end_ms,
            words=tuple(WordTiming(w.text, w.start_ms, w.end_ms) for w in segment.words),
            is_final=segment.is_final,
        )
        result = self._redactor.redact_segment(text_input)
        masked: set[int] = set()
        for span in result.spans:
            if span.word_start >= 0:
                masked.update(range(span.word_start, span.word_end))
        event = TranscriptEvent(
            segment_id=segment.segment_id,
            party=segment.party,
            speaker=labelled.speaker,
            start_ms=segment.start_ms,
            end_ms=segment.end_ms,
            text=result.text,
            revision=segment.revision,
            is_final=segment.is_final,
            stable_words=segment.stable_words,
            words=tuple(
                TranscriptWord(REDACTED_WORD if i in masked else w.text, w.start_ms, w.end_ms,
                               round(w.probability, 3))
                for i, w in enumerate(segment.words)),
            redacted=tuple(span.kind for span in result.spans),
            text_raw=(segment.text if segment.is_final and self._keep_raw_text and result.spans
                      else None),
        )
        return RedactedSegment(labelled, text_input, tuple(result.spans), event)

    def report(self, redacted: RedactedSegment) -> None:
        """Hand the spans of a published final to the listeners (the recorder silences them)."""
        if redacted.spans:
            for listener in self.listeners:
                listener(list(redacted.spans))


# -- coaching ----------------------------------------------------------------------------------


# One thread scores every call's finals: onnxruntime runs each on one core, and a queue here
# is cheaper than calls' segments contending for the cores the speech engine decodes on.
_SENTIMENT_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sentiment")


class Coaching:
    """The organization's ``CallCoach`` for one call, answering in live events."""

    def __init__(self, profile: CoachingProfile) -> None:
        self._coach = CallCoach(profile)

    @property
    def profile(self) -> CoachingProfile:
        return self._coach.profile

    def use_profile(self, profile: CoachingProfile) -> None:
        """The organization's rule set changed: coach the rest of the call with it."""
        if profile is not self._coach.profile:
            self._coach.use_profile(profile)

    async def feed(self, redacted: RedactedSegment) -> list[LiveEvent]:
        """The insights of one segment. Keyword prompts fire on partials, so a competitor is
        coached before the sentence ends; the coach does not prompt again for the final.

        A final's sentiment model (a few ms of MiniLM) runs in the sentiment worker thread,
        never on the event loop."""
        if not redacted.coached:
            return []
        segment = redacted.text_input
        sentiment = None
        text = self._coach.sentiment_text(segment)
        if text is not None:
            model = self._coach.profile.sentiment_model
            sentiment = await asyncio.get_running_loop().run_in_executor(
                _SENTIMENT_WORKER, model.score, text)
        segment_key = redacted.event.segment_key
        events = (insight_event(i, segment_key)
                  for i in self._coach.feed(segment, sentiment=sentiment))
        return [e for e in events if e is not None]

    def tick(self, now_ms: int, *, speech_active: bool) -> list[PromptEvent | ChecklistEvent]:
        """What comes with time, none of it from a transcript line: prompts (silence, checklist
        deadlines), and the checklist when a deadline passes (the first tick shows it)."""
        events: list[PromptEvent | ChecklistEvent] = [
            prompt_event(p) for p in self._coach.tick(now_ms, speech_active=speech_active)]
        checklist = self._coach.checklist_changes(now_ms)
        if checklist is not None:
            events.append(checklist_event(checklist))
        return events

    def finish(self, end_ms: int, abnormal: bool) -> SummaryEvent:
        return summary_event(self._coach.finish(end_ms), abnormal)


def with_sentiment(event: TranscriptEvent, insights: list[LiveEvent]) -> TranscriptEvent:
    """The final ``event`` with the sentiment coaching scored for it (among ``insights``)."""
    if not event.is_final:
        return event
    for insight in insights:
        if isinstance(insight, SentimentEvent) and insight.segment_id == event.segment_id:
            return replace(event, sentiment=insight.score)
    return event


def prompt_event(prompt: CoachingPrompt, segment_key: str | None = None) -> PromptEvent:
    return PromptEvent(
        rule_id=prompt.rule_id, kind=prompt.kind, severity=prompt.severity, title=prompt.title,
        body=prompt.body, at_ms=prompt.at_ms, party=prompt.party, evidence=tuple(prompt.evidence),
        link=prompt.link, id=f"{prompt.rule_id}@{prompt.at_ms}", segment_key=segment_key,
    )


def metrics_event(m: TalkMetrics) -> MetricsEvent:
    return MetricsEvent(
        at_ms=m.at_ms,
        talk_ratio=PartyPair(round(m.talk_ratio, 4), round(1 - m.talk_ratio, 4)),
        talk_ms=PartyPair(m.rep_talk_ms, m.customer_talk_ms),
        longest_monologue_ms=PartyPair(m.rep_longest_monologue_ms,
                                       m.customer_longest_monologue_ms),
        current_monologue_party=m.current_monologue_party,
        current_monologue_ms=m.current_monologue_ms,
        interruptions=PartyPair(m.rep_interruptions, m.customer_interruptions),
        wpm=PartyPair(round(m.rep_wpm, 1), round(m.customer_wpm, 1)),
        fillers=PartyPair(m.rep_fillers, m.customer_fillers),
        silence_ms=m.silence_ms,
        longest_silence_ms=m.longest_silence_ms,
        patience_ms=round(m.patience_ms, 1),
    )


def checklist_event(state: ChecklistState) -> ChecklistEvent:
    return ChecklistEvent(tuple(ChecklistEntry(i.id, i.label, i.status, i.due_ms, i.done_at_ms)
                                for i in state.items), state.at_ms)


def keyword_event(hit: KeywordHit) -> KeywordEvent:
    return KeywordEvent(
        segment_id=hit.segment_id, party=hit.party, category=hit.category, keyword=hit.keyword,
        matched_text=hit.matched_text, start_ms=hit.start_ms, end_ms=hit.end_ms,
        word_start=hit.word_start, word_end=hit.word_end, method=hit.method, score=hit.score,
        link=hit.link,
    )


def sentiment_event(s: SentimentScore) -> SentimentEvent:
    return SentimentEvent(segment_id=s.segment_id, party=s.party, score=s.score, label=s.label,
                          trend=s.trend, at_ms=s.at_ms, model=s.model)


def summary_event(summary: CallSummary, abnormal: bool) -> SummaryEvent:
    return SummaryEvent(
        text=summary.text,
        key_points=tuple(summary.key_points),
        action_items=tuple(SummaryActionItem(a.owner, a.text, a.at_ms, a.due)
                           for a in summary.action_items),
        next_steps=tuple(SummaryActionItem(a.owner, a.text, a.at_ms, a.due)
                         for a in summary.next_steps),
        objections=tuple(SummaryObjection(o.category, o.keyword, o.text, o.at_ms)
                         for o in summary.objections),
        competitors=tuple(summary.competitors),
        keyword_counts={str(k): v for k, v in summary.keyword_counts.items()},
        metrics=metrics_event(summary.metrics) if summary.metrics else None,
        sentiment_trend={str(party): tuple(tuple(point) for point in points)
                         for party, points in summary.sentiment_trend.items()},
        checklist_missed=tuple(summary.checklist_missed),
        duration_ms=summary.duration_ms,
        signals=json_ready(summary.signals),
        abnormal=abnormal,
        analytics=json_ready(summary.analytics),
    )


def insight_event(insight: object, segment_key: str | None = None) -> LiveEvent | None:
    """The live event for one of the coach's records; None for a record the feed does not carry."""
    if isinstance(insight, CoachingPrompt):
        return prompt_event(insight, segment_key)
    if isinstance(insight, SentimentScore):
        return sentiment_event(insight)
    if isinstance(insight, TalkMetrics):
        return metrics_event(insight)
    if isinstance(insight, KeywordHit):
        return keyword_event(insight)
    if isinstance(insight, ChecklistState):
        return checklist_event(insight)
    return None
