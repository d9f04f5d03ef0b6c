"""The speaker labelling stage: who spoke each transcript segment of a call.

``SpeakerLabelling`` is the stage of the live path (voice_server/live_stages.py):
it sees the call's audio and labels each segment. Two-track calls know each
segment's party from its track. A ``MIXED`` call (Vonage's one stream, a
conference bridge) gets a ``SpeakerLabeller`` when a speaker encoder is
loaded: the call's audio goes through an ``OnlineDiarizer``
(media/speakers/diarizer.py) in a worker thread, a batch every
``BATCH_S`` so the event loop never runs the encoder, and each transcript
segment is labelled with the voice that covers most of it. Labels are
``speaker_1``/``speaker_2`` unless the rep's voice is enrolled, then
``rep``/``customer``. A segment is never held back for its label: it gets
the best label known when it is final (the diarizer lags ~1.2 s).
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np

from media.frames import AudioFrame, Party
from media.speakers.diarizer import OnlineDiarizer, SpeakerTurn
from media.speakers.encoder import SpeakerEncoder
from media.transcript import TranscriptSegment
from voice_server.live_stages import LabelledSegment

log = logging.getLogger(__name__)

BATCH_S = 0.4
_MAX_PENDING_FRAMES = 3000  # one minute of 20 ms frames; beyond that the diarizer is skipped


class SpeakerLabeller:
    def __init__(self, encoder: SpeakerEncoder, rep_print: np.ndarray | None = None) -> None:
        self._diarizer = OnlineDiarizer(encoder)
        if rep_print is not None:  # the rep's stored voice (voice_server/rep_voiceprints.py)
            self._diarizer.enrol(rep_print)
        self._pending: list[AudioFrame] = []
        self._turns: list[SpeakerTurn] = []
        self._current: str | None = None
        self._task: asyncio.Task | None = None
        self._failed = False
        self.frames_skipped = 0

    def push(self, frame: AudioFrame) -> None:
        if self._failed:
            return
        if len(self._pending) >= _MAX_PENDING_FRAMES:
            self.frames_skipped += 1  # overloaded: labels degrade, the call does not
            return
        self._pending.append(frame)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="speaker-labels")

    def speaker_for(self, start_ms: int, end_ms: int) -> str | None:
        """The voice that covers most of ``start_ms..end_ms``, as far as decided now.

        The part after the last decided turn counts as a turn of the voice
        speaking now: a short turn that closed just inside the segment must not
        outvote the still open turn that covers the rest of it.
        """
        best, overlap_best = None, 0
        if self._current is not None:
            decided_ms = self._turns[-1].end_ms if self._turns else start_ms
            best, overlap_best = self._current, end_ms - max(start_ms, decided_ms)
        for turn in reversed(self._turns):
            if turn.end_ms < start_ms:
                break
            overlap = min(end_ms, turn.end_ms) - max(start_ms, turn.start_ms)
            if overlap > overlap_best:
                best, overlap_best = turn.speaker, overlap
        return best or self._current

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if not self._failed:
            try:
                self._turns.extend(await asyncio.to_thread(self._diarizer.flush))
            except Exception:
                log.exception("speaker diarization failed at the end of the call")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(BATCH_S)
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                turns, current = await asyncio.to_thread(self._feed, batch)
            except Exception:
                log.exception("speaker diarization failed; this call keeps unlabelled segments")
                self._failed = True
                return
            self._absorb(turns, current)

    def feed_now(self, frames: list[AudioFrame]) -> None:
        """One batch decided on the calling thread: replays of recorded calls (benchmarks).

        The live path does the same per batch, with the encoder in a worker thread.
        """
        self._absorb(*self._feed(frames))

    def _absorb(self, turns: list[SpeakerTurn], current: str | None) -> None:
        self._turns.extend(turns)
        self._current = current

    def _feed(self, frames: list[AudioFrame]) -> tuple[list[SpeakerTurn], str | None]:
        turns: list[SpeakerTurn] = []
        for frame in frames:
            turns.extend(self._diarizer.push(frame))
        current = self._diarizer.current
        return turns, current[0] if current else None


class SpeakerLabelling:
    """Labels segments with their speaker; mixed-track audio goes to a ``SpeakerLabeller``.

    Without an encoder, or on a two-track call, a segment's speaker is its party.
    """

    def __init__(self, encoder: SpeakerEncoder | None,
                 rep_print: np.ndarray | None = None) -> None:
        self._encoder = encoder
        self._rep_print = rep_print  # the rep's enrolled voice makes mixed labels rep/customer
        self._labeller: SpeakerLabeller | None = None

    def push(self, frame: AudioFrame) -> None:
        if str(frame.party) != Party.MIXED.value or self._encoder is None:
            return
        if self._labeller is None:
            self._labeller = SpeakerLabeller(self._encoder, self._rep_print)
        self._labeller.push(frame)

    def label(self, segment: TranscriptSegment) -> LabelledSegment:
        speaker = segment.party
        if self._labeller is not None:
            speaker = self._labeller.speaker_for(segment.start_ms, segment.end_ms) or segment.party
        return LabelledSegment(segment, speaker)

    async def close(self) -> None:
        if self._labeller is not None:
            await self._labeller.close()
