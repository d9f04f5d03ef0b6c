"""Two-voice mixed calls built from real telephone speech (Debian asterisk-core-sounds).

Each call alternates prompts of two real speakers recorded at 8 kHz: the
English voice (asterisk-core-sounds-en-wav) and another voice from the
French, Italian or Russian packages. Gaps are 0.2-0.9 s, occasionally a
0.3 s overlap; the reference turn of a prompt is its span with leading and
trailing silence (below -40 dBFS) trimmed. Deterministic for a given seed.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.eval.der import LabelledSegment

__all__ = ["OTHER_VOICES", "MixedCall", "build_call", "voice_available"]

SOUNDS = Path("/usr/share/asterisk/sounds")
ENGLISH = "en_US_f_Allison"
#: second voices, with the Debian package that ships each
OTHER_VOICES = {
    "it_IT_m_Carlo": "asterisk-core-sounds-it-wav",
    "fr_CA_f_June": "asterisk-core-sounds-fr-wav",
    "ru_RU_f_IvrvoiceRU": "asterisk-core-sounds-ru-wav",
}
RATE = 8000


@dataclass(frozen=True)
class MixedCall:
    name: str
    pcm: np.ndarray  # int16, 8 kHz
    reference: list[LabelledSegment]


def voice_available(voice: str) -> bool:
    return (SOUNDS / voice).is_dir() and any((SOUNDS / voice).glob("*.wav"))


def _clips(voice: str) -> list[Path]:
    return sorted((SOUNDS / voice).glob("*.wav"))


def _load(path: Path) -> np.ndarray | None:
    with wave.open(str(path)) as w:
        if w.getframerate() != RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            return None
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > 327)[0]  # -40 dBFS
    if len(loud) == 0:
        return None
    return pcm[loud[0] : loud[-1] + 1]


def build_call(other: str, seed: int = 0, turns: int = 24) -> MixedCall:
    rng = np.random.default_rng(seed)
    pools = {"english": _clips(ENGLISH), "other": _clips(other)}
    audio = np.zeros(0, np.int32)
    reference = []
    speaker = "english"
    for _ in range(turns):
        clip = None
        while clip is None or not 0.8 * RATE <= len(clip) <= 6 * RATE:
            clip = _load(pools[speaker][rng.integers(len(pools[speaker]))])
        if len(audio) and rng.random() < 0.15:
            gap = -int(0.3 * RATE)
        else:
            gap = int(rng.uniform(0.2, 0.9) * RATE)
        start = max(0, len(audio) + gap)
        end = start + len(clip)
        if end > len(audio):
            audio = np.concatenate([audio, np.zeros(end - len(audio), np.int32)])
        audio[start:end] += clip
        reference.append(LabelledSegment(1000 * start // RATE, 1000 * end // RATE, speaker))
        speaker = "other" if speaker == "english" else "english"
    pcm = np.clip(audio, -32768, 32767).astype(np.int16)
    return MixedCall(f"{ENGLISH}+{other}#{seed}", pcm, reference)
