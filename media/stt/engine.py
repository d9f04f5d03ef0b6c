"""What the speech pool needs from a speech engine, and the records they exchange.

``SpeechModelPool`` schedules batches of utterances onto any object with a
``decode`` method of this shape; ``WhisperDecoder`` (faster-whisper) is the
one the server uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True, slots=True)
class DecodeRequest:
    """Audio of one utterance (float32 mono 16 kHz in [-1, 1]) plus what should steer its words."""

    audio: np.ndarray
    prompt: str | None = None  # previous text of the call, or an initial prompt
    hotwords: str | None = None  # names to favour: company, product, competitors
    prefix: str | None = None  # text the utterance is known to begin with; the result continues it
    # word times (and probabilities); with a prefix they cover the prefix's words too
    word_timestamps: bool = True


@dataclass(frozen=True, slots=True)
class DecodedWord:
    text: str
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True, slots=True)
class DecodeResult:
    """Text of one utterance; word times are seconds from the start of the request's audio."""

    text: str
    words: tuple[DecodedWord, ...] = field(default=())
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


class SpeechDecoder(Protocol):
    """A speech engine the pool can drive.

    ``decode`` runs on one of the pool's worker threads, one batch at a
    time per worker. It returns one ``DecodeResult`` per request, in the
    order of the requests; an utterance with nothing said gets empty text.
    Word times are seconds from the start of the request's audio. ``prompt``
    and ``hotwords`` are hints an engine may ignore; for a request with a
    ``prefix`` the result holds only the words after that prefix.
    """

    def decode(self, requests: list[DecodeRequest]) -> list[DecodeResult]: ...
