"""Real 8 kHz telephone speech with reference texts, from the Debian asterisk-core-sounds-en packages."""

from __future__ import annotations

import gzip
import wave
from pathlib import Path

import numpy as np
import pytest

SOUNDS = Path("/usr/share/asterisk/sounds/en")
TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def reference_texts() -> dict[str, str]:
    texts = {}
    with gzip.open(TEXTS, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(";") or ":" not in line:
                continue
            name, text = line.split(":", 1)
            texts[name.strip()] = text.strip()
    return texts


def load_clip(name: str) -> np.ndarray:
    """The prompt ``name`` as int16 samples at 8 kHz."""
    with wave.open(str(SOUNDS / f"{name}.wav")) as w:
        assert w.getframerate() == 8000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).copy()


requires_corpus = pytest.mark.skipif(
    not (SOUNDS.is_dir() and TEXTS.is_file()),
    reason="needs Debian asterisk-core-sounds-en-wav and asterisk-core-sounds-en (scripts/apt-test.txt)",
)
