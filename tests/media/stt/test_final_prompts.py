"""A final's prompt (the party's earlier text) does not depend on how busy the speech pool is.

tiny.en leans hard on its prompt: without the call's earlier sentences, the same audio is heard
differently. So the prompt of utterance N must be the text of finals 1..N-1 even when final N-1
is still being decoded as utterance N ends (a pool busy with other calls). A decoder that holds
the first final until the test lets it go makes that moment reproducible; it wraps the real
tiny.en decoder.
"""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from media.frames import AudioFrame, Party
from media.stt import SpeechModelPool, StreamingTranscriber
from media.stt.decoder import WhisperDecoder
from media.stt.models import locate_model
from tests.media.speech_corpus import load_clip, requires_corpus

pytestmark = requires_corpus

SILENCE_S = 1.2  # closes an utterance (the VAD needs 480 ms of silence)


class _FirstFinalHeld:
    """The real decoder, except that the first batch holding a final waits for ``release``."""

    def __init__(self) -> None:
        self.decoder = WhisperDecoder(locate_model("tiny.en"))
        self.release = threading.Event()
        self.final_prompts: list[str | None] = []
        self._held = False

    def decode(self, requests):
        finals = [r for r in requests if r.word_timestamps]
        self.final_prompts.extend(r.prompt for r in finals)
        if finals and not self._held:
            self._held = True
            self.release.wait(timeout=120)
        return self.decoder.decode(requests)


async def test_a_final_waits_for_the_previous_final_text_as_its_prompt():
    decoder = _FirstFinalHeld()
    pool = SpeechModelPool(decoder)
    transcriber = StreamingTranscriber(Party.REP, pool)
    finals = []

    async def collect():
        async for segment in transcriber:
            if segment.is_final:
                finals.append(segment)

    reader = asyncio.create_task(collect())
    silence = np.zeros(int(8000 * SILENCE_S), np.int16)
    audio = np.concatenate([load_clip("conf-getconfno"), silence, load_clip("vm-goodbye"), silence])
    try:
        for n, start in enumerate(range(0, len(audio), 160)):
            transcriber.push(AudioFrame(audio[start : start + 160], 8000, Party.REP, start // 8))
            if n % 10 == 0:
                await asyncio.sleep(0.005)
        # both utterances have ended; the first one's final is still held in the decoder
        assert finals == []
        decoder.release.set()
        await transcriber.close()
        await reader
    finally:
        decoder.release.set()
        await pool.close()

    assert len(finals) == 2, [f.text for f in finals]
    assert "conference" in finals[0].text.lower()
    # the second final was decoded after the first, prompted with its text
    assert len(decoder.final_prompts) == 2, decoder.final_prompts
    assert decoder.final_prompts[0] is None
    assert decoder.final_prompts[1] == finals[0].text
