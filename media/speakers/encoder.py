"""The speaker encoder: PCM16 speech -> 256-dim unit "d-vector" (numpy only).

Embeddings are close (cosine) for the same voice and far for different
voices. The network is the 3-layer LSTM speaker encoder shipped as
``pretrained.pt`` inside the PyPI package ``resemblyzer`` 0.1.4
(Apache-2.0), run here in numpy: the weights are read by
``media.torch_weights`` without torch, so torch is not a run-time
dependency. scripts/setup-env installs that package with ``--no-deps``
(its own dependencies include torch) just for the file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from media.frames import AudioFormatError
from media.mel import MelFrontEnd
from media.resample import resample
from media.torch_weights import CheckpointFormatError, load_checkpoint

__all__ = [
    "EMBEDDING_SIZE",
    "ENCODER_MODEL",
    "ENCODER_RATE",
    "SpeakerAudioError",
    "SpeakerEncoder",
    "SpeakerModelError",
    "check_pcm",
    "cosine",
]

ENCODER_RATE = 16000
EMBEDDING_SIZE = 256
ENCODER_MODEL = "resemblyzer-0.1.4"
_HIDDEN = 256
_LAYERS = 3
_PARTIAL_FRAMES = 160  # the encoder was trained on 1.6 s partial utterances
_TARGET_DBFS = -30.0  # training loudness; quieter audio is raised to it, louder left alone
_MIN_SPEECH_SAMPLES = ENCODER_RATE // 4


class SpeakerModelError(RuntimeError):
    """The speaker encoder's weights are missing or unreadable."""


class SpeakerAudioError(AudioFormatError):
    """Audio that cannot be embedded: wrong type/shape/rate, too short, or silent."""


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two embeddings (1.0 = same direction)."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def _default_weights_path() -> Path:
    # find_spec locates the installed package without importing it (importing
    # it would import torch, which is deliberately absent).
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SpeakerModelError(
            "speaker encoder weights not found: install them with scripts/setup-env "
            "(pip install --no-deps resemblyzer==0.1.4) or pass weights_path"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def check_pcm(pcm: np.ndarray, sample_rate: int) -> None:
    if not isinstance(pcm, np.ndarray) or pcm.dtype != np.int16:
        raise SpeakerAudioError("speaker audio must be a numpy int16 array")
    if pcm.ndim != 1:
        raise SpeakerAudioError(f"speaker audio must be mono (1-D), got shape {pcm.shape}")
    if sample_rate not in (8000, 16000, 24000, 48000):
        raise SpeakerAudioError(f"unsupported sample rate {sample_rate} Hz")


class SpeakerEncoder:
    """PCM16 speech -> unit speaker embedding (numpy only; share one per server).

    Stateless after construction, so one instance can serve every call.
    """

    def __init__(self, weights_path: str | Path | None = None) -> None:
        path = Path(weights_path) if weights_path is not None else _default_weights_path()
        if not path.is_file():
            raise SpeakerModelError(f"speaker encoder weights not found at {path}")
        try:
            state = load_checkpoint(path)["model_state"]
            self._layers = []
            for k in range(_LAYERS):
                w_ih = np.asarray(state[f"lstm.weight_ih_l{k}"], dtype=np.float32)
                w_hh = np.asarray(state[f"lstm.weight_hh_l{k}"], dtype=np.float32)
                bias = state[f"lstm.bias_ih_l{k}"] + state[f"lstm.bias_hh_l{k}"]
                if w_hh.shape != (4 * _HIDDEN, _HIDDEN) or w_ih.shape[0] != 4 * _HIDDEN:
                    raise SpeakerModelError(f"unexpected LSTM layer {k} shape in {path.name}")
                self._layers.append(
                    (
                        np.ascontiguousarray(w_ih.T),
                        np.ascontiguousarray(w_hh.T),
                        bias.astype(np.float32),
                    )
                )
            self._proj_w = np.ascontiguousarray(state["linear.weight"].T.astype(np.float32))
            self._proj_b = state["linear.bias"].astype(np.float32)
        except (CheckpointFormatError, KeyError, TypeError) as exc:
            raise SpeakerModelError(f"cannot read speaker encoder weights {path}: {exc}") from exc
        self.mel = MelFrontEnd(ENCODER_RATE)
        self.model = ENCODER_MODEL
        self.window_samples = _PARTIAL_FRAMES * self.mel.hop

    # -- the network -------------------------------------------------------

    def forward(self, mels: np.ndarray) -> np.ndarray:
        """(batch, frames, 40) power mels -> (batch, 256) unit embeddings."""
        x = np.asarray(mels, dtype=np.float32)
        batch, steps, _ = x.shape
        for w_ih, w_hh, bias in self._layers:
            gates_in = x @ w_ih + bias  # input contribution for every step at once
            h = np.zeros((batch, _HIDDEN), np.float32)
            c = np.zeros((batch, _HIDDEN), np.float32)
            out = np.empty((batch, steps, _HIDDEN), np.float32)
            for t in range(steps):
                g = gates_in[:, t] + h @ w_hh
                i = _sigmoid(g[:, :_HIDDEN])
                f = _sigmoid(g[:, _HIDDEN : 2 * _HIDDEN])
                cell = np.tanh(g[:, 2 * _HIDDEN : 3 * _HIDDEN])
                o = _sigmoid(g[:, 3 * _HIDDEN :])
                c = f * c + i * cell
                h = o * np.tanh(c)
                out[:, t] = h
            x = out
        raw = np.maximum(h @ self._proj_w + self._proj_b, 0.0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return raw / np.maximum(norms, 1e-12)

    # -- audio in ----------------------------------------------------------

    @staticmethod
    def to_float(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
        """Validated PCM16 at any supported rate -> float32 16 kHz waveform in -1..1."""
        check_pcm(pcm, sample_rate)
        if sample_rate != ENCODER_RATE:
            pcm = resample(pcm, sample_rate, ENCODER_RATE)
        return pcm.astype(np.float32) / 32768.0

    @staticmethod
    def normalise(wav: np.ndarray) -> np.ndarray:
        """Raise quiet audio to the training loudness (-30 dBFS RMS); never lower it."""
        rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
        if rms == 0.0:
            return wav
        change_db = _TARGET_DBFS - 20.0 * np.log10(rms)
        return wav if change_db < 0 else wav * np.float32(10.0 ** (change_db / 20.0))

    def window_starts(self, n_samples: int, rate_per_s: float = 1.3, min_coverage: float = 0.75):
        """Start samples of 1.6 s windows covering an utterance (the last one padded)."""
        hop = self.mel.hop
        n_frames = int(np.ceil((n_samples + 1) / hop))
        step = round(ENCODER_RATE / rate_per_s / hop)
        starts = list(range(0, max(1, n_frames - _PARTIAL_FRAMES + step + 1), step))
        last = starts[-1] * hop
        if len(starts) > 1 and (n_samples - last) / self.window_samples < min_coverage:
            starts.pop()
        return [s * hop for s in starts]

    def embed_wav(self, wav: np.ndarray) -> np.ndarray:
        """Float 16 kHz waveform (already loudness-normalised) -> unit embedding.

        Utterances longer than one window are cut into overlapping 1.6 s
        windows; the embedding is the normalised mean of theirs.
        """
        starts = self.window_starts(len(wav))
        end = starts[-1] + self.window_samples
        if end > len(wav):
            wav = np.pad(wav, (0, end - len(wav)))
        mel = self.mel(wav)
        frame_starts = [s // self.mel.hop for s in starts]
        mels = np.stack([mel[f : f + _PARTIAL_FRAMES] for f in frame_starts])
        partials = self.forward(mels)
        mean = partials.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def embed(self, pcm: np.ndarray, sample_rate: int = ENCODER_RATE) -> np.ndarray:
        """PCM16 speech of one speaker -> (256,) float32 unit embedding."""
        wav = self.to_float(pcm, sample_rate)
        if len(wav) < _MIN_SPEECH_SAMPLES:
            raise SpeakerAudioError(
                f"need at least {1000 * _MIN_SPEECH_SAMPLES // ENCODER_RATE} ms of speech, "
                f"got {1000 * len(wav) // ENCODER_RATE} ms"
            )
        if not np.any(pcm):
            raise SpeakerAudioError("audio is digital silence; nothing to embed")
        return self.embed_wav(self.normalise(wav))

    def embed_batch(self, wavs: list[np.ndarray]) -> np.ndarray:
        """One embedding per short float 16 kHz waveform (each <= 1.6 s, zero-padded to it)."""
        n = self.window_samples
        mels = []
        for wav in wavs:
            wav = self.normalise(np.asarray(wav, np.float32)[:n])
            mels.append(self.mel(np.pad(wav, (0, n - len(wav))))[:_PARTIAL_FRAMES])
        if not mels:
            return np.zeros((0, EMBEDDING_SIZE), np.float32)
        return self.forward(np.stack(mels))
