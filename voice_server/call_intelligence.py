"""The live path of a call after the carrier edge: audio → words → insights → events.

``CallIntelligence`` is the ``AudioConsumer`` that ``CallSessions`` attaches
to every call. Per party it runs a ``StreamingTranscriber`` on the server's
shared ``SpeechModelPool``; every segment is PII-masked and published
(``transcript.partial`` / ``transcript.final``); finals go through the
organization's ``CallCoach``, whose insights are published as
``insight.keyword``, ``insight.sentiment``, ``insight.metrics`` and
``coaching.prompt``; a ticker asks the coach for time-based prompts
(silence, checklist deadlines) once a second; at the end the call's summary
is published as ``insight.summary`` before ``call.ended``.

The bus payloads are the wire format of the live feed and the CRM writer;
they are shaped here, once, and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from coaching.call_coach import CallCoach, CoachingProfile
from coaching.records import (
    CallSummary,
    CoachingPrompt,
    KeywordHit,
    SegmentInput,
    SentimentScore,
    TalkMetrics,
    WordTiming,
    as_event,
)
from coaching.redaction import RedactedSpan, Redactor
from media.frames import AudioFrame, Party
from media.speakers.encoder import SpeakerEncoder
from media.stt.pool import SpeechModelPool
from media.stt.streaming import StreamingTranscriber
from media.transcript import TranscriptSegment
from voice_server.call_session import CallSession
from voice_server.logs import call_id_var
from voice_server.speaker_labels import SpeakerLabeller

log = logging.getLogger(__name__)

TICK_S = 1.0
# Redacted spans are handed to whoever silences the recording (the recorder).
PiiListener = Callable[[list[RedactedSpan]], None]


class CallIntelligence:
    """Transcription and coaching for one live call."""

    def __init__(self, session: CallSession, pool: SpeechModelPool, profile: CoachingProfile, *,
                 keep_raw_text: bool = False, speaker_encoder: SpeakerEncoder | None = None,
                 rep_voiceprint: np.ndarray | None = None) -> None:
        self._session = session
        self._pool = pool
        self._profile = profile
        self._keep_raw_text = keep_raw_text
        self._coach = CallCoach(profile)
        self._redactor = Redactor()
        self._transcribers: dict[str, StreamingTranscriber] = {}
        self._readers: list[asyncio.Task] = []
        self._ticker: asyncio.Task | None = None
        self._closed = False
        self._last_ms = 0
        self._speaker_encoder = speaker_encoder
        self._labeller: SpeakerLabeller | None = None
        # voiceprints: the rep's enrolled voice makes mixed-call labels rep/customer
        self._rep_voiceprint = rep_voiceprint
        self.pii_listeners: list[PiiListener] = []
        self.segments_published = 0
        self._segments_in_flight = 0  # read from a transcriber, not yet through the coach

    # -- AudioConsumer ---------------------------------------------------------------------------

    def on_audio(self, frame: AudioFrame) -> None:
        if self._closed:
            return
        party = str(frame.party)
        transcriber = self._transcribers.get(party)
        if transcriber is None:
            transcriber = self._start_party(party)
        self._last_ms = max(self._last_ms, int(frame.end_ms))
        transcriber.push(frame)
        if party == Party.MIXED.value and self._speaker_encoder is not None:
            if self._labeller is None:
                self._labeller = SpeakerLabeller(self._speaker_encoder, self._rep_voiceprint)
            self._labeller.push(frame)

    def on_dtmf(self, digit: str, at_ms: int, duration_ms: int) -> None:
        pass  # digits are published by the session itself; coaching does not use them

    async def close(self, abnormal: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        # Closing a transcriber decodes the utterance in progress: the last words are kept.
        await asyncio.gather(*(t.close() for t in self._transcribers.values()),
                             return_exceptions=True)
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._labeller is not None:
            await self._labeller.close()
        summary = self._coach.finish(self._last_ms)
        await self._session.publish("insight.summary", _summary_payload(summary, abnormal))

    # -- the pipeline ----------------------------------------------------------------------------

    def _start_party(self, party: str) -> StreamingTranscriber:
        transcriber = StreamingTranscriber(
            party, self._pool, stream_id=f"{self._session.call_id}:{party}",
            hotwords=self._profile.hotwords or None,
        )
        self._transcribers[party] = transcriber
        self._readers.append(asyncio.create_task(self._read(transcriber),
                                                 name=f"stt:{self._session.call_id}:{party}"))
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name=f"coach:{self._session.call_id}")
        return transcriber

    async def _read(self, transcriber: StreamingTranscriber) -> None:
        token = call_id_var.set(self._session.call_id)
        try:
            async for segment in transcriber:
                self._segments_in_flight += 1
                try:
                    await self._on_segment(segment)
                except Exception:  # one bad segment must not stop the call's transcript
                    log.exception("could not process segment %s", segment.segment_id)
                finally:
                    self._segments_in_flight -= 1
        finally:
            call_id_var.reset(token)

    async def _on_segment(self, segment: TranscriptSegment) -> None:
        if segment.is_final and not segment.text.strip():
            # The speech engine retracts partials that turned out to be noise.
            await self._session.publish("transcript.retracted", {
                "segment_id": segment.segment_id, "party": segment.party})
            return
        speaker = segment.party
        if self._labeller is not None:
            speaker = self._labeller.speaker_for(segment.start_ms, segment.end_ms) or segment.party
        # Coaching reasons about the rep and the customer: a segment whose voice is not
        # known as one of them (mixed channel, rep not enrolled) is transcribed, not coached.
        coached = speaker in (Party.REP.value, Party.CUSTOMER.value)
        coach_party = speaker if coached else Party.CUSTOMER.value
        coach_input = SegmentInput(
            segment_id=segment.segment_id, party=coach_party, text=segment.text,
            start_ms=segment.start_ms, end_ms=segment.end_ms,
            words=tuple(WordTiming(w.text, w.start_ms, w.end_ms) for w in segment.words),
            is_final=segment.is_final,
        )
        redacted = self._redactor.redact_segment(coach_input)
        masked_words = _mask_words(segment, redacted.spans)
        payload: dict[str, Any] = {
            "segment_id": segment.segment_id,
            "party": segment.party,
            "speaker": speaker,
            "start_ms": segment.start_ms,
            "end_ms": segment.end_ms,
            "text": redacted.text,
            "revision": segment.revision,
            "is_final": segment.is_final,
            "stable_words": segment.stable_words,
            "words": masked_words,
            "redacted": [span.kind for span in redacted.spans],
        }
        # call-prompts: the transcript line (as the CRM keys it) that set a prompt off
        segment_key = f"{segment.party}:{segment.segment_id}"
        if not segment.is_final:
            await self._session.publish("transcript.partial", payload)
            # Keyword prompts fire on partials, so a competitor is coached before the
            # sentence ends; the coach does not prompt again for the final.
            for insight in self._coach.feed(coach_input) if coached else ():
                await self._publish_insight(insight, segment_key)
            return
        if self._keep_raw_text and redacted.spans:
            payload["text_raw"] = segment.text
        await self._session.publish("transcript.final", payload)
        self.segments_published += 1
        if redacted.spans:
            for listener in self.pii_listeners:
                listener(list(redacted.spans))
        for insight in self._coach.feed(coach_input) if coached else ():
            await self._publish_insight(insight, segment_key)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                speaking = self._segments_in_flight > 0 or any(
                    t.speech_in_progress for t in self._transcribers.values())
                for prompt in self._coach.tick(self._last_ms, speech_active=speaking):
                    await self._publish_insight(prompt)
            except Exception:
                log.exception("coaching tick failed")

    async def _publish_insight(self, insight: Any, segment_key: str | None = None) -> None:
        if isinstance(insight, CoachingPrompt):
            await self._session.publish("coaching.prompt", _prompt_payload(insight, segment_key))
        elif isinstance(insight, SentimentScore):
            await self._session.publish("insight.sentiment", {
                "segment_id": insight.segment_id, "party": insight.party, "score": insight.score,
                "label": insight.label, "trend": insight.trend, "at_ms": insight.at_ms,
                "model": insight.model,
            })
        elif isinstance(insight, TalkMetrics):
            await self._session.publish("insight.metrics", _metrics_payload(insight))
        elif isinstance(insight, KeywordHit):
            await self._session.publish("insight.keyword", asdict(insight))


def _mask_words(segment: TranscriptSegment, spans) -> list[dict]:
    masked = set()
    for span in spans:
        if span.word_start >= 0:
            masked.update(range(span.word_start, span.word_end))
    return [
        {"text": "[redacted]" if i in masked else w.text, "start_ms": w.start_ms,
         "end_ms": w.end_ms, "probability": round(w.probability, 3)}
        for i, w in enumerate(segment.words)
    ]


def _prompt_payload(prompt: CoachingPrompt, segment_key: str | None = None) -> dict:
    body = asdict(prompt)
    body["evidence"] = list(prompt.evidence)
    # A stable id per rule and moment: the browser de-duplicates replays by it.
    body["id"] = f"{prompt.rule_id}@{prompt.at_ms}"
    # Prompts from the clock (silence, checklist deadlines) have no triggering line.
    body["segment_key"] = segment_key
    return {"prompt": body}


def _metrics_payload(m: TalkMetrics) -> dict:
    monologue = {Party.REP.value: 0, Party.CUSTOMER.value: 0}
    if m.longest_monologue_party in monologue:
        monologue[m.longest_monologue_party] = m.longest_monologue_ms
    return {
        "at_ms": m.at_ms,
        "talk_ratio": {"rep": round(m.talk_ratio, 4), "customer": round(1 - m.talk_ratio, 4)},
        "talk_ms": {"rep": m.rep_talk_ms, "customer": m.customer_talk_ms},
        "longest_monologue_ms": monologue,
        "current_monologue": {"party": m.current_monologue_party, "ms": m.current_monologue_ms},
        "interruptions": {"rep": m.rep_interruptions, "customer": m.customer_interruptions},
        "wpm": {"rep": round(m.rep_wpm, 1), "customer": round(m.customer_wpm, 1)},
        "fillers": {"rep": m.rep_fillers, "customer": m.customer_fillers},
        "silence_ms": m.silence_ms,
        "longest_silence_ms": m.longest_silence_ms,
        "patience_ms": round(m.patience_ms, 1),
    }


def _summary_payload(summary: CallSummary, abnormal: bool) -> dict:
    _, body = as_event(summary)  # coaching's JSON-ready form of its records
    body["metrics"] = _metrics_payload(summary.metrics) if summary.metrics else None
    body["abnormal"] = abnormal
    return body
