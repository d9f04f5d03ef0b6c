"""Learning each rep's voice on two-track calls, for labelling mixed-channel calls.

On a two-track call (Twilio, SIP) the rep's track is the rep, for certain:
``RepVoiceLearner`` (an ``AudioConsumer``) keeps up to ``MAX_SPEECH_MS`` of
that track's speech — only the frames loud enough to be speech, grouped into
utterances — and when the call ends, a background task builds a voiceprint
from it in a worker thread and merges it into the rep's stored print
(weighted by speech, ``Voiceprint.merged``). The hot path does one RMS and
one 20 ms copy per frame; the encoder never runs on the event loop.

A mixed-channel call (Vonage, a bridge) of a rep with a stored print gets
it enrolled in its diarizer (``RepVoiceprints.load`` → ``CallIntelligence``),
so its segments are labelled ``rep`` / ``customer`` and coached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np

from crm_core.voiceprints import StoredVoiceprint, load_voiceprint, update_voiceprint
from media.frames import AudioFrame, Party
from media.speakers.encoder import ENCODER_MODEL, SpeakerEncoder
from media.voiceprints import MIN_UTTERANCE_MS, Voiceprint, VoiceprintError, build_voiceprint
from voice_server.call_session import CallSession

log = logging.getLogger(__name__)

#: Speech kept per call: a minute says what a voice sounds like; more only costs CPU.
MAX_SPEECH_MS = 60_000
#: Less rep speech than this on a call teaches nothing reliable; the call is skipped.
MIN_SPEECH_MS = 2_000
#: An utterance is cut here so one long monologue is several embeddings, not one blurred one.
MAX_UTTERANCE_MS = 8_000
# A 20 ms frame is speech when its RMS is above this (about -40 dBFS): line hiss and
# comfort noise stay below it, speech at telephone levels is well above.
_SPEECH_RMS = 330.0
# Pauses between words shorter than this stay inside the utterance.
_HANGOVER_MS = 300


class RepVoiceLearner:
    """Collects the rep track's speech on one call; at the end hands it to ``RepVoiceprints``."""

    def __init__(self, on_done: Callable[[list[tuple[np.ndarray, int]]], None]) -> None:
        self._on_done = on_done
        self._utterances: list[tuple[np.ndarray, int]] = []
        self._current: list[np.ndarray] = []
        self._current_ms = 0
        self._rate = 0
        self._silent_ms = 0
        self._kept_ms = 0
        self._closed = False

    @property
    def speech_ms(self) -> int:
        return self._kept_ms + self._current_ms

    def on_audio(self, frame: AudioFrame) -> None:
        if self._closed or frame.party is not Party.REP or self.speech_ms >= MAX_SPEECH_MS:
            return
        if frame.sample_rate != self._rate:
            self._end_utterance()
            self._rate = frame.sample_rate
        ms = 1000 * len(frame.pcm) // frame.sample_rate
        rms = float(np.sqrt(np.mean(np.square(frame.pcm, dtype=np.float64)))) if len(frame.pcm) else 0.0
        if rms >= _SPEECH_RMS:
            self._silent_ms = 0
        else:
            self._silent_ms += ms
            if self._silent_ms > _HANGOVER_MS:
                self._end_utterance()
                return
            if not self._current:
                return  # silence before speech is not kept
        self._current.append(frame.pcm.copy())  # the edge may reuse its buffer
        self._current_ms += ms
        if self._current_ms >= MAX_UTTERANCE_MS:
            self._end_utterance()

    def on_dtmf(self, digit: str, at_ms: int, duration_ms: int) -> None:
        pass

    async def close(self, abnormal: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._end_utterance()
        if self._kept_ms >= MIN_SPEECH_MS:
            self._on_done(self._utterances)
        self._utterances = []

    def _end_utterance(self) -> None:
        if self._current and self._current_ms >= MIN_UTTERANCE_MS:
            self._utterances.append((np.concatenate(self._current), self._rate))
            self._kept_ms += self._current_ms
        self._current, self._current_ms, self._silent_ms = [], 0, 0


class RepVoiceprints:
    """The server's voiceprint store: loads prints for calls and learns from two-track ones."""

    def __init__(self, encoder: SpeakerEncoder, pool_source: Callable[[], object]) -> None:
        self._encoder = encoder
        self._pool_source = pool_source
        self._tasks: set[asyncio.Task] = set()
        self.learnt = 0

    async def load(self, org_id: str, rep_id: str | None) -> Voiceprint | None:
        """The rep's print for this server's speaker model, or None (none, other model, DB down)."""
        if not rep_id:
            return None
        try:
            async with self._pool_source().acquire() as conn:
                stored = await load_voiceprint(conn, org_id, rep_id)
        except Exception:  # no print means unlabelled speakers, not a failed call
            log.exception("could not load the rep's voiceprint")
            return None
        if stored is None or stored.model != ENCODER_MODEL:
            return None
        try:
            return Voiceprint.from_array(stored.embedding, stored.speech_ms, stored.utterances,
                                         stored.model)
        except VoiceprintError:
            log.warning("stored voiceprint of rep %s is malformed; ignored", rep_id)
            return None

    def learner(self, session: CallSession) -> RepVoiceLearner | None:
        """A consumer for calls that have a rep (it only listens to a ``REP`` track)."""
        info = session.info
        if not info.rep_id:
            return None
        return RepVoiceLearner(lambda utterances: self._spawn(info.org_id, info.rep_id, utterances))

    async def learn(self, org_id: str, rep_id: str,
                    utterances: list[tuple[np.ndarray, int]]) -> Voiceprint | None:
        """Build a print from the utterances (in a thread) and merge it into the stored one."""
        try:
            fresh = await asyncio.to_thread(build_voiceprint, self._encoder, utterances)
        except VoiceprintError as exc:
            log.info("no voiceprint learnt from this call: %s", exc)
            return None

        def combine(stored: StoredVoiceprint | None) -> StoredVoiceprint:
            merged = fresh
            if stored is not None and stored.model == fresh.model:
                try:
                    merged = Voiceprint.from_array(stored.embedding, stored.speech_ms,
                                                   stored.utterances, stored.model).merged(fresh)
                except VoiceprintError:
                    log.warning("stored voiceprint of rep %s was malformed; replaced", rep_id)
            return StoredVoiceprint(merged.model, merged.to_array().astype("<f4").tobytes(),
                                    merged.speech_ms, merged.utterances)

        async with self._pool_source().acquire() as conn:
            saved = await update_voiceprint(conn, org_id, rep_id, combine)
        if saved is None:
            log.warning("rep %s is not a user of org %s; voiceprint not kept", rep_id, org_id)
            return None
        self.learnt += 1
        return Voiceprint.from_array(saved.embedding, saved.speech_ms, saved.utterances, saved.model)

    def _spawn(self, org_id: str, rep_id: str, utterances: list[tuple[np.ndarray, int]]) -> None:
        # The call ends now; its call.ended must not wait for the encoder.
        task = asyncio.create_task(self._learn_logged(org_id, rep_id, utterances),
                                   name="rep-voiceprint")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _learn_logged(self, org_id, rep_id, utterances) -> None:
        try:
            await self.learn(org_id, rep_id, utterances)
        except Exception:
            log.exception("could not learn the voiceprint of rep %s", rep_id)

    async def drain(self) -> None:
        """Finish the prints being learnt (server shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
