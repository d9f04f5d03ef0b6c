"""Rep voiceprints: one averaged speaker embedding per rep, kept as a plain array.

A rep's voice is learnt where it is known for certain — the rep's own track
of two-track calls (Twilio, SIP, SIPREC), or turns a diarized call already
labelled ``rep`` — and used on mixed-channel calls via
``OnlineDiarizer.enrol``. Storing it (e.g. ``to_array().tobytes()`` in a
BYTEA column with ``model``) is the caller's business: media/ has no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from media.speakers.encoder import (
    EMBEDDING_SIZE,
    ENCODER_MODEL,
    SpeakerAudioError,
    SpeakerEncoder,
)

__all__ = ["Voiceprint", "VoiceprintError", "build_voiceprint"]

#: Utterances shorter than this say little about a voice and are skipped.
MIN_UTTERANCE_MS = 1000


class VoiceprintError(ValueError):
    """No usable speech to build a voiceprint from, or a malformed stored one."""


@dataclass(frozen=True, slots=True)
class Voiceprint:
    """A unit embedding of one voice, and how much speech it was built from."""

    embedding: np.ndarray
    speech_ms: int
    utterances: int
    model: str = ENCODER_MODEL

    def __post_init__(self) -> None:
        e = self.embedding
        if not isinstance(e, np.ndarray) or e.shape != (EMBEDDING_SIZE,):
            raise VoiceprintError(f"voiceprint must be a vector of {EMBEDDING_SIZE} values")
        if not np.all(np.isfinite(e)) or abs(float(np.linalg.norm(e)) - 1.0) > 1e-3:
            raise VoiceprintError("voiceprint must be a finite unit vector")
        if self.speech_ms < 0 or self.utterances < 0:
            raise VoiceprintError("speech_ms and utterances must not be negative")

    def to_array(self) -> np.ndarray:
        """The embedding as float32 (what to persist, with ``model`` and ``speech_ms``)."""
        return self.embedding.astype(np.float32, copy=True)

    @classmethod
    def from_array(
        cls, values, speech_ms: int, utterances: int, model: str = ENCODER_MODEL
    ) -> Voiceprint:
        """Rebuild a stored voiceprint (a float32 array or its ``tobytes()``)."""
        if isinstance(values, (bytes, bytearray, memoryview)):
            if len(values) != 4 * EMBEDDING_SIZE:
                raise VoiceprintError(f"stored voiceprint must be {4 * EMBEDDING_SIZE} bytes")
            values = np.frombuffer(values, dtype="<f4")
        e = np.asarray(values, dtype=np.float64)
        norm = float(np.linalg.norm(e)) if e.shape == (EMBEDDING_SIZE,) else 0.0
        if norm == 0.0 or not np.isfinite(norm):
            raise VoiceprintError("stored voiceprint is empty or malformed")
        return cls((e / norm).astype(np.float32), speech_ms, utterances, model)

    def merged(self, other: Voiceprint) -> Voiceprint:
        """Combine with a print of the same voice from later calls (weighted by speech)."""
        if other.model != self.model:
            raise VoiceprintError(f"cannot merge {other.model} voiceprint into {self.model}")
        total = self.embedding * max(self.speech_ms, 1) + other.embedding * max(other.speech_ms, 1)
        return Voiceprint(
            (total / np.linalg.norm(total)).astype(np.float32),
            self.speech_ms + other.speech_ms,
            self.utterances + other.utterances,
            self.model,
        )


def build_voiceprint(
    encoder: SpeakerEncoder, utterances: Iterable[tuple[np.ndarray, int]]
) -> Voiceprint:
    """Average the embeddings of one voice's utterances ``(pcm16, sample_rate)``.

    Each utterance is weighted by its length; ones under ``MIN_UTTERANCE_MS``
    or without sound are skipped. Raises ``VoiceprintError`` if none is usable.
    """
    total = np.zeros(EMBEDDING_SIZE)
    speech_ms = used = 0
    for pcm, rate in utterances:
        if not isinstance(pcm, np.ndarray) or pcm.ndim != 1 or not rate:
            raise VoiceprintError("utterances must be (1-D int16 array, sample rate) pairs")
        ms = 1000 * len(pcm) // rate
        if ms < MIN_UTTERANCE_MS:
            continue
        try:
            e = encoder.embed(pcm, rate)
        except SpeakerAudioError as exc:
            if pcm.dtype != np.int16 or "sample rate" in str(exc):
                raise VoiceprintError(str(exc)) from exc
            continue  # silent utterance: nothing to learn from it
        total += e * ms
        speech_ms += ms
        used += 1
    if not used:
        raise VoiceprintError(f"no utterance of at least {MIN_UTTERANCE_MS} ms with sound")
    return Voiceprint((total / np.linalg.norm(total)).astype(np.float32), speech_ms, used)
