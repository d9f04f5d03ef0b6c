"""The unit of audio that flows through a call: one party's PCM16 samples."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

SUPPORTED_RATES = (8000, 16000, 24000, 48000)


class Party(StrEnum):
    """Who produced a stretch of audio.

    ``MIXED`` is a single channel holding both sides (e.g. Vonage's one
    WebSocket stream); speaker attribution splits it later.
    """

    REP = "rep"
    CUSTOMER = "customer"
    MIXED = "mixed"


class AudioFormatError(ValueError):
    """Raised when audio does not have the shape, type or rate we can process."""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """Mono PCM16 samples of one party, placed on the call clock.

    ``timestamp_ms`` is the call-clock time of the first sample, in
    milliseconds since the call started, so both parties line up.
    """

    pcm: np.ndarray
    sample_rate: int
    party: Party
    timestamp_ms: int

    def __post_init__(self) -> None:
        if not isinstance(self.pcm, np.ndarray) or self.pcm.dtype != np.int16:
            raise AudioFormatError("AudioFrame.pcm must be a numpy int16 array")
        if self.pcm.ndim != 1:
            raise AudioFormatError(f"AudioFrame.pcm must be mono (1-D), got shape {self.pcm.shape}")
        if self.sample_rate not in SUPPORTED_RATES:
            raise AudioFormatError(
                f"unsupported sample rate {self.sample_rate} Hz; expected one of {SUPPORTED_RATES}"
            )
        if self.timestamp_ms < 0:
            raise AudioFormatError("AudioFrame.timestamp_ms must not be negative")

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.pcm) / self.sample_rate

    @property
    def end_ms(self) -> float:
        return self.timestamp_ms + self.duration_ms
