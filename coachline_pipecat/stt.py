"""Coachline's streaming transcriber as a pipecat speech-to-text service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
)
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import STTService
from pipecat.utils.time import time_now_iso8601

from media.frames import AudioFrame
from media.stt.pool import SpeechModelPool
from media.stt.streaming import StreamingOptions, StreamingTranscriber
from media.transcript import TranscriptSegment


class CoachlineSTTService(STTService):
    """Audio frames in; partials (``InterimTranscriptionFrame``) and finals
    (``TranscriptionFrame``) out, each carrying the ``TranscriptSegment`` as ``result``.

    ``pool``: a shared ``SpeechModelPool`` (one per process serves many pipelines); without one
    the service loads ``model`` (a packaged Whisper model, ``tiny.en`` by default) when the
    pipeline starts and closes it when the pipeline ends. ``party`` names the speaker of this
    audio for the coach (``customer`` for a caller, ``rep`` for the agent's side).
    """

    def __init__(
        self,
        *,
        pool: SpeechModelPool | None = None,
        model: str = "tiny.en",
        party: str = "customer",
        options: StreamingOptions | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("settings", STTSettings(model=model, language="en"))
        # speech end to final: ~0.8 s p95 at 8 calls on 2 cores (docs/performance.md)
        kwargs.setdefault("ttfs_p99_latency", 1.0)
        super().__init__(**kwargs)
        self._pool = pool
        self._owns_pool = pool is None
        self._model = model
        self._party = party
        self._options = options
        self._transcriber: StreamingTranscriber | None = None
        self._reader: asyncio.Task | None = None
        self._samples = 0  # audio received so far, for the call-clock time of the next frame

    def can_generate_metrics(self) -> bool:
        return False

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        if self._pool is None:
            # loading the model reads ~75 MB from disk: never on the event loop
            self._pool = await asyncio.to_thread(SpeechModelPool.from_model, self._model)
        self._transcriber = StreamingTranscriber(self._party, self._pool, options=self._options)
        self._samples = 0
        self._reader = self.create_task(self._push_segments(self._transcriber))

    async def stop(self, frame: EndFrame) -> None:
        # the utterance in progress becomes a final, pushed before the pipeline ends
        await self._finish(drain=True)
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._finish(drain=False)
        await super().cancel(frame)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        if self._transcriber is not None and len(audio) >= 2:
            pcm = np.frombuffer(audio[: len(audio) // 2 * 2], dtype=np.int16)
            # a view of pipecat's bytes: the transcriber keeps 16 kHz input as given, so copy it
            timestamp_ms = self._samples * 1000 // self.sample_rate
            self._transcriber.push(
                AudioFrame(pcm.copy(), self.sample_rate, self._party, timestamp_ms)
            )
            self._samples += len(pcm)
        yield None

    async def _push_segments(self, transcriber: StreamingTranscriber) -> None:
        async for segment in transcriber.segments():
            await self.push_frame(self._frame_of(segment))

    def _frame_of(self, segment: TranscriptSegment) -> Frame:
        if segment.is_final:
            return TranscriptionFrame(
                segment.text, self._user_id, time_now_iso8601(), result=segment, finalized=True
            )
        return InterimTranscriptionFrame(
            segment.text, self._user_id, time_now_iso8601(), result=segment
        )

    async def _finish(self, *, drain: bool) -> None:
        transcriber, reader = self._transcriber, self._reader
        self._transcriber = self._reader = None
        if transcriber is not None:
            await transcriber.close()
        if reader is not None:
            if drain:
                await reader  # close() ended the segment stream: the reader returns
            else:
                await self.cancel_task(reader)
        if self._owns_pool and self._pool is not None:
            await self._pool.close()
            self._pool = None
