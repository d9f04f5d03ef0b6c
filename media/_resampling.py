"""Stand-in for media/resample.py (media-io) until it lands on main: the speech engine's
only direct use of soxr, kept in this one private function so the swap is one edit."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def stream_resampler(in_rate: int, out_rate: int) -> Callable[[np.ndarray], np.ndarray]:
    """A stateful int16 -> int16 resampler for one stream (anti-aliased, soxr HQ)."""
    import soxr

    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="HQ")

    def process(pcm: np.ndarray) -> np.ndarray:
        return stream.resample_chunk(pcm)

    return process
