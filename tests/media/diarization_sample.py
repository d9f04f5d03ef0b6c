"""The pyannote-audio sample: 30 s of two voices at 16 kHz with a reference RTTM.

The sample (tests/data/diarization/, MIT, see NOTICE) is 30 s at 16 kHz;
speech starts at 6.7 s. Reference: speaker90 alone at 8.32-9.92 s,
10.57-14.49 s, 18.59-21.49 s; speaker91 alone at 14.70-17.92 s and
21.78-27.85 s.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from media.eval.der import LabelledSegment
from media.frames import AudioFrame, Party
from media.speakers.diarizer import OnlineDiarizer

DATA = Path(__file__).resolve().parents[1] / "data" / "diarization"
RATE = 16000


def load_sample() -> np.ndarray:
    with wave.open(str(DATA / "sample.wav")) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


def cut(pcm: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    return pcm[int(start_s * RATE) : int(end_s * RATE)]


def stream(diarizer: OnlineDiarizer, pcm: np.ndarray, rate: int = RATE, offset_ms: int = 0):
    frame = rate // 50  # 20 ms, as carriers deliver it
    turns = []
    for start in range(0, len(pcm), frame):
        turns += diarizer.push(
            AudioFrame(
                pcm[start : start + frame], rate, Party.MIXED, offset_ms + 1000 * start // rate
            )
        )
    return turns + diarizer.flush()


def hypothesis(turns):
    return [LabelledSegment(t.start_ms, t.end_ms, t.speaker) for t in turns]
