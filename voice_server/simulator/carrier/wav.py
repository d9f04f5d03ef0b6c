"""Speech to play: WAV files, by default Debian's asterisk-core-sounds-en-wav prompts."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

SOUNDS = Path("/usr/share/asterisk/sounds/en")


class WavError(ValueError):
    pass


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono 16-bit PCM samples and the sample rate of a WAV file."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise WavError(f"{path}: need mono 16-bit PCM, got {wav.getnchannels()} ch "
                           f"x {8 * wav.getsampwidth()} bit")
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)
    return pcm, rate


def sound(name: str) -> Path:
    """A prompt from the asterisk sounds package, e.g. ``sound("hello-world")``."""
    path = SOUNDS / f"{name}.wav"
    if not path.exists():
        raise WavError(f"{path} not found; install the Debian package asterisk-core-sounds-en-wav")
    return path
