"""Kaldi-compatible log mel filterbank features (what CAM++ was trained on), in numpy.

Matches ``torchaudio.compliance.kaldi.fbank`` with its defaults (25 ms Povey
window, 10 ms shift, DC removal, 0.97 pre-emphasis, 512-point power spectrum,
mel bins from 20 Hz to Nyquist, no dither, edges snipped) so the embedding
model runs without torch or torchaudio.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["fbank"]

_FRAME = 400  # 25 ms at 16 kHz
_SHIFT = 160  # 10 ms
_NFFT = 512


def _mel(freq):
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


@lru_cache(maxsize=4)
def _mel_banks(num_bins: int, sample_rate: int) -> np.ndarray:
    low, high = _mel(20.0), _mel(sample_rate / 2)
    delta = (high - low) / (num_bins + 1)
    fft_mel = _mel(np.arange(_NFFT // 2) * sample_rate / _NFFT)
    left = low + np.arange(num_bins)[:, None] * delta
    center, right = left + delta, left + 2 * delta
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))
    return banks.T.astype(np.float32)  # (256, num_bins)


@lru_cache(maxsize=1)
def _povey() -> np.ndarray:
    n = np.arange(_FRAME, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / (_FRAME - 1))) ** 0.85


def fbank(wav: np.ndarray, num_bins: int = 80, sample_rate: int = 16000) -> np.ndarray:
    """Float waveform in -1..1 -> (frames, num_bins) float32 log mel energies."""
    wav = np.asarray(wav, dtype=np.float64)
    if len(wav) < _FRAME:
        return np.zeros((0, num_bins), np.float32)
    count = 1 + (len(wav) - _FRAME) // _SHIFT
    idx = np.arange(_FRAME)[None, :] + _SHIFT * np.arange(count)[:, None]
    frames = wav[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    shifted = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = (frames - 0.97 * shifted) * _povey()
    power = np.abs(np.fft.rfft(frames, n=_NFFT, axis=1)[:, : _NFFT // 2]) ** 2
    energies = power.astype(np.float32) @ _mel_banks(num_bins, sample_rate)
    return np.log(np.maximum(energies, np.finfo(np.float32).eps)).astype(np.float32)
