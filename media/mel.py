"""Power mel spectrogram, the front end the speaker encoder was trained on.

The encoder expects exactly the features it saw in training: 16 kHz audio,
25 ms Hann windows every 10 ms (centred, zero-padded at the edges), power
spectrum, 40 triangular mel bands on Slaney's mel scale with area
normalisation, no logarithm. Written in numpy so no audio library (and no
numba) is needed at run time; tests compare the encoder's output with the
reference implementation's, which validates these features end to end.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["MelFrontEnd"]

# Slaney's scale: linear below 1 kHz, logarithmic above.
_LINEAR_HZ_PER_MEL = 200.0 / 3
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _LINEAR_HZ_PER_MEL
    high = hz >= _BREAK_HZ
    mel[high] = _BREAK_MEL + np.log(hz[high] / _BREAK_HZ) / _LOG_STEP
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _LINEAR_HZ_PER_MEL
    high = mel >= _BREAK_MEL
    hz[high] = _BREAK_HZ * np.exp(_LOG_STEP * (mel[high] - _BREAK_MEL))
    return hz


@lru_cache(maxsize=4)
def _filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    fft_hz = np.linspace(0.0, sample_rate / 2, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array([sample_rate / 2]))[0], n_mels + 2))
    widths = np.diff(edges)
    rising = (fft_hz[None, :] - edges[:-2, None]) / widths[:-1, None]
    falling = (edges[2:, None] - fft_hz[None, :]) / widths[1:, None]
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band
    return bank.astype(np.float32)


class MelFrontEnd:
    """Waveform (float, -1..1, 16 kHz) -> (frames, n_mels) float32 power mel spectrogram."""

    def __init__(
        self, sample_rate: int = 16000, window_ms: int = 25, hop_ms: int = 10, n_mels: int = 40
    ) -> None:
        self.sample_rate = sample_rate
        self.n_fft = sample_rate * window_ms // 1000
        self.hop = sample_rate * hop_ms // 1000
        self.n_mels = n_mels
        # Periodic Hann: the window used for spectral analysis (not the symmetric one).
        n = np.arange(self.n_fft)
        self._window = (0.5 - 0.5 * np.cos(2 * np.pi * n / self.n_fft)).astype(np.float32)
        self._bank = _filterbank(sample_rate, self.n_fft, n_mels)

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        wav = np.asarray(wav, dtype=np.float32)
        half = self.n_fft // 2
        padded = np.pad(wav, (half, half))
        count = self.n_frames(len(wav))
        frames = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft)[:: self.hop][:count]
        spectrum = np.fft.rfft(frames * self._window, axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        return power @ self._bank.T
