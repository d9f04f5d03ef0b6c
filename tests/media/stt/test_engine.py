"""A speech engine other than Whisper, plugged into the real speech pool and streaming transcriber."""

import asyncio

import numpy as np

from media.frames import AudioFrame, Party
from media.stt import (
    DecodedWord,
    DecodeRequest,
    DecodeResult,
    SpeechDecoder,
    SpeechModelPool,
    StreamingTranscriber,
)
from media.stt.engine import SAMPLE_RATE
from tests.media.speech_corpus import load_clip, requires_corpus

WORD = "beep"


class BeepCounter:
    """Hears one ``beep`` for every second of a request's audio that is not silent."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def decode(self, requests: list[DecodeRequest]) -> list[DecodeResult]:
        self.batches.append(len(requests))
        results = []
        for request in requests:
            duration = len(request.audio) / SAMPLE_RATE
            heard = [
                DecodedWord(WORD, start / SAMPLE_RATE, min(duration, start / SAMPLE_RATE + 1), 1.0)
                for start in range(0, len(request.audio), SAMPLE_RATE)
                if np.max(np.abs(request.audio[start : start + SAMPLE_RATE])) > 0.01
            ]
            # a forced prefix is already known: the result is what follows it
            heard = heard[len(request.prefix.split()) if request.prefix else 0 :]
            words = tuple(heard) if request.word_timestamps else ()
            results.append(DecodeResult(" ".join(w.text for w in heard), words))
        return results


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def test_the_toy_engine_is_a_speech_decoder():
    engine: SpeechDecoder = BeepCounter()
    assert engine.decode([DecodeRequest(_tone(1.0))])[0].text == WORD


async def test_the_pool_batches_finals_for_another_engine():
    engine = BeepCounter()
    async with SpeechModelPool(engine) as pool:
        # seconds 0, 1 and 2 hold tone, 3 is silent, 4 holds tone again
        audio = np.concatenate([_tone(2.5), _silence(1.5), _tone(1.0)])
        first = pool.submit("a", DecodeRequest(audio), final=True)
        second = pool.submit("b", DecodeRequest(_tone(1.2)), final=True)
        results = await asyncio.gather(first, second)
        stats = pool.stats()
    assert results[0].text == "beep beep beep beep"
    assert [(w.start_s, w.end_s) for w in results[0].words] == [
        (0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (4.0, 5.0),
    ]
    assert results[1].text == "beep beep"
    assert engine.batches == [2]
    assert (stats.finals_decoded, stats.batches, stats.decode_errors) == (2, 1, 0)


@requires_corpus
async def test_streaming_speech_through_another_engine_gives_segments():
    engine = BeepCounter()
    pcm = np.concatenate([np.zeros(8000, np.int16), load_clip("vm-forward"), np.zeros(8000, np.int16)])
    async with SpeechModelPool(engine) as pool:
        transcriber = StreamingTranscriber(Party.CUSTOMER, pool)
        segments = []

        async def collect():
            async for segment in transcriber:
                segments.append(segment)

        reader = asyncio.create_task(collect())
        for n, i in enumerate(range(0, len(pcm), 160)):
            transcriber.push(AudioFrame(pcm[i : i + 160], 8000, Party.CUSTOMER, i // 8))
            if n % 10 == 0:
                await asyncio.sleep(0.01)
        await transcriber.close()
        await reader
    finals = [s for s in segments if s.is_final]
    assert finals and engine.batches
    for final in finals:
        assert final.party == "customer"
        assert final.words and {w.text for w in final.words} == {WORD}
        assert final.text == " ".join([WORD] * len(final.words))
        seconds = (final.end_ms - final.start_ms) / 1000
        assert len(final.words) <= seconds + 1
        assert 0 <= final.start_ms <= final.end_ms <= len(pcm) // 8
    assert all(set(s.text.split()) <= {WORD} for s in segments)
