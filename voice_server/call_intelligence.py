"""The live path of a call after the carrier edge: audio → words → insights → events.

``CallIntelligence`` is the ``AudioConsumer`` that ``CallSessions`` attaches
to every call. It wires the stages of voice_server/live_stages.py and
voice_server/speaker_labels.py, and publishes what they return::

    audio ─▶ transcription ─▶ speaker labelling ─▶ PII redaction ─▶ coaching
                                                     │                 │
                                   transcript.partial/.final      insight.keyword,
                                   (spans to the recorder)        insight.sentiment,
                                                                  insight.metrics,
                                                                  coaching.prompt,
                                                                  insight.checklist

A ticker asks the coaching stage for time-based prompts (silence, checklist
deadlines) and checklist changes once a second; at the end the call's summary is published as
``insight.summary`` before the session publishes ``call.ended``. The event
shapes are those of crm_core/calls/live_events.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import numpy as np

from coaching.call_coach import CoachingProfile
from crm_core.calls.live_events import TranscriptRetractedEvent
from media.frames import AudioFrame
from media.speakers.encoder import SpeakerEncoder
from media.stt.pool import SpeechModelPool
from media.transcript import TranscriptSegment
from voice_server.call_session import CallSession
from voice_server.live_stages import Coaching, PiiRedaction, Transcription, with_sentiment
from voice_server.speaker_labels import SpeakerLabelling

log = logging.getLogger(__name__)

TICK_S = 1.0


class CallIntelligence:
    """Transcription and coaching for one live call: its stages, wired in order."""

    def __init__(self, session: CallSession, pool: SpeechModelPool, profile: CoachingProfile, *,
                 keep_raw_text: bool = False, speaker_encoder: SpeakerEncoder | None = None,
                 rep_voiceprint: np.ndarray | None = None,
                 profile_source: Callable[[], Awaitable[CoachingProfile]] | None = None) -> None:
        self._session = session
        # asked every tick for the organization's current profile: a rule set an admin saves
        # reaches calls already under way within a tick or two
        self._profile_source = profile_source
        self.transcription = Transcription.on_pool(session.call_id, pool, self._on_segment,
                                                   hotwords=profile.hotwords)
        # the rep's enrolled voice makes mixed-call labels rep/customer
        self.speakers = SpeakerLabelling(speaker_encoder, rep_voiceprint)
        # Its listeners get the PII spans of each final (the recorder silences card numbers).
        self.redaction = PiiRedaction(keep_raw_text=keep_raw_text)
        self.coaching = Coaching(profile)
        self._ticker: asyncio.Task | None = None
        self._closed = False
        self.segments_published = 0

    # -- AudioConsumer ---------------------------------------------------------------------------

    def on_audio(self, frame: AudioFrame) -> None:
        if self._closed:
            return
        self.transcription.push(frame)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name=f"coach:{self._session.call_id}")
        self.speakers.push(frame)

    def on_dtmf(self, digit: str, at_ms: int, duration_ms: int) -> None:
        pass  # digits are published by the session itself; coaching does not use them

    async def close(self, abnormal: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.transcription.close()  # the last words still flow through the stages
        await self.speakers.close()
        await self._session.emit(self.coaching.finish(self.transcription.last_ms, abnormal))

    # -- the pipeline ----------------------------------------------------------------------------

    async def _on_segment(self, segment: TranscriptSegment) -> None:
        if segment.is_final and not segment.text.strip():
            # The speech engine retracts partials that turned out to be noise.
            await self._session.emit(TranscriptRetractedEvent(segment.segment_id, segment.party))
            return
        labelled = self.speakers.label(segment)
        redacted = self.redaction.redact(labelled)
        insights = await self.coaching.feed(redacted)
        # A final carries its sentiment, so the CRM stores it with the segment (the calls list
        # filters on it); the line still goes out before the insights about it.
        await self._session.emit(with_sentiment(redacted.event, insights))
        if segment.is_final:
            self.segments_published += 1
            self.redaction.report(redacted)
        for event in insights:
            await self._session.emit(event)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                if self._profile_source is not None:
                    self.coaching.use_profile(await self._profile_source())
                for event in self.coaching.tick(self.transcription.last_ms,
                                                 speech_active=self.transcription.speech_active):
                    await self._session.emit(event)
            except Exception:
                log.exception("coaching tick failed")
