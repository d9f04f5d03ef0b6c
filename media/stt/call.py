"""Both parties of one call: routes frames to a transcriber per party and merges their segments.

This is the object a live call holds: ``push(frame)`` from the audio hot
path (a party's transcriber is created on its first frame), ``async for``
over one stream of segments from every party, ``close()`` at hang-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from media.frames import AudioFrame
from media.stt.pool import SpeechModelPool
from media.stt.streaming import StreamingOptions, StreamingTranscriber, TranscriberClosedError
from media.transcript import TranscriptSegment


class CallTranscriber:
    """Transcribes every party of one call with the shared pool."""

    def __init__(
        self,
        call_id: str,
        pool: SpeechModelPool,
        *,
        options: StreamingOptions | None = None,
        hotwords: str | None = None,
        initial_prompt: str | None = None,
    ):
        self.call_id = call_id
        self._pool = pool
        self._options = options
        self._hotwords = hotwords
        self._initial_prompt = initial_prompt
        self._parties: dict[str, StreamingTranscriber] = {}
        self._forwarders: list[asyncio.Task] = []
        self._out: asyncio.Queue[TranscriptSegment | None] = asyncio.Queue()
        self._closed = False

    def push(self, frame: AudioFrame) -> None:
        """Route one frame to its party's transcriber (sync, cheap; call from the event loop)."""
        if self._closed:
            raise TranscriberClosedError(f"call {self.call_id} is closed")
        party = str(frame.party)
        transcriber = self._parties.get(party)
        if transcriber is None:
            transcriber = StreamingTranscriber(
                party,
                self._pool,
                stream_id=f"{self.call_id}:{party}",
                options=self._options,
                hotwords=self._hotwords,
                initial_prompt=self._initial_prompt,
            )
            self._parties[party] = transcriber
            self._forwarders.append(asyncio.get_running_loop().create_task(self._forward(transcriber)))
        transcriber.push(frame)

    async def _forward(self, transcriber: StreamingTranscriber) -> None:
        async for segment in transcriber:
            self._out.put_nowait(segment)

    async def segments(self) -> AsyncIterator[TranscriptSegment]:
        """Every party's partials and finals as they are ready; ends after ``close()``."""
        while True:
            segment = await self._out.get()
            if segment is None:
                return
            yield segment

    def __aiter__(self) -> AsyncIterator[TranscriptSegment]:
        return self.segments()

    async def close(self) -> None:
        """Flush every party (their last finals are still delivered), then end the stream."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(t.close() for t in self._parties.values()), return_exceptions=True)
        await asyncio.gather(*self._forwarders, return_exceptions=True)
        self._out.put_nowait(None)
