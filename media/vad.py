"""Voice activity detection: Silero VAD v6 (the ONNX file faster-whisper ships) on onnxruntime.

The model scores 32 ms windows (512 samples at 16 kHz, with 64 samples of
context from the previous window) and carries an LSTM state, so one
``VoiceActivityDetector`` per party keeps that state across frames.  A
hysteresis turns scores into speech start/end events tuned for telephone
speech: a start needs ``min_speech_ms`` of confident speech (a click or a
burst of line noise does not open an utterance); an end needs
``min_silence_ms`` below the lower threshold (short pauses inside a
sentence do not split it).  8 kHz input is resampled to 16 kHz, the only
rate this model file accepts.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.resample import Resampler

VAD_RATE = 16000
WINDOW = 512  # samples per score at 16 kHz (32 ms)
_CONTEXT = 64


class VadError(RuntimeError):
    """The VAD model could not be loaded or was given audio it cannot score."""


@dataclass(frozen=True, slots=True)
class VadOptions:
    """Thresholds on Silero's speech probability and the timings of the hysteresis."""

    threshold: float = 0.5  # a window at or above this is speech
    neg_threshold: float = 0.35  # inside speech, only windows below this count as silence
    min_speech_ms: int = 96  # confident speech needed to open an utterance
    min_silence_ms: int = 480  # silence needed to close one (telephone turn-taking pauses)
    pre_roll_ms: int = 224  # audio kept before the detected start (soft word onsets)
    post_roll_ms: int = 128  # audio kept after the last speech window (trailing consonants)
    pause_ms: int = 224  # silence that announces a likely end (lets a caller start work early)

    def __post_init__(self) -> None:
        if not 0.0 < self.neg_threshold <= self.threshold < 1.0:
            raise ValueError("VadOptions needs 0 < neg_threshold <= threshold < 1")


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Speech begins at ``sample`` (16 kHz samples since the stream began, pre-roll included)."""

    sample: int


@dataclass(frozen=True, slots=True)
class SpeechPause:
    """Speech has paused for ``pause_ms``; if it stays quiet, ``SpeechEnd(sample)`` follows
    with this same ``sample``.  A caller may start decoding the utterance now."""

    sample: int


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """Speech ended at ``sample`` (16 kHz samples since the stream began, post-roll included)."""

    sample: int


def silero_model_path() -> Path:
    """The Silero VAD v6 ONNX file inside the installed faster-whisper package."""
    import faster_whisper

    return Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"


class SileroVadModel:
    """The ONNX session; stateless, so one instance serves every stream of a process."""

    def __init__(self, path: str | os.PathLike | None = None):
        import onnxruntime

        path = Path(path) if path else silero_model_path()
        if not path.is_file():
            raise VadError(f"Silero VAD model not found at {path}")
        opts = onnxruntime.SessionOptions()
        # one thread: the windows are tiny, and the cores belong to the speech model
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=opts
        )
        self._lock = threading.Lock()

    def score(
        self, windows: np.ndarray, state: tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Speech probabilities of consecutive windows (each 64 context + 512 samples)."""
        h, c = state
        with self._lock:
            probs, h, c = self._session.run(None, {"input": windows, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), (h, c)


class VoiceActivityDetector:
    """Stateful detector for one audio stream; feed it PCM in order, read start/end events."""

    def __init__(
        self,
        model: SileroVadModel,
        options: VadOptions | None = None,
        *,
        sample_rate: int = VAD_RATE,
    ):
        if sample_rate not in (8000, VAD_RATE):
            raise VadError(f"VAD takes 8000 or 16000 Hz audio, not {sample_rate}")
        self.options = options or VadOptions()
        self._model = model
        self._rate = sample_rate
        self._upsampler = None if sample_rate == VAD_RATE else Resampler(sample_rate, VAD_RATE)
        self._state = (np.zeros((1, 1, 128), np.float32), np.zeros((1, 1, 128), np.float32))
        self._context = np.zeros(_CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self._scored = 0  # 16 kHz samples already scored
        self._speaking = False
        self._run_start: int | None = None  # first window of the current run of speech
        self._run_windows = 0
        self._silent_windows = 0
        self._last_speech_end = 0
        self.last_probability = 0.0

    @property
    def speaking(self) -> bool:
        return self._speaking

    @property
    def in_pause(self) -> bool:
        """Inside speech, but the latest window was below the lower threshold."""
        return self._speaking and self._silent_windows > 0

    def process(self, pcm: np.ndarray) -> list[SpeechStart | SpeechPause | SpeechEnd]:
        """Score new audio (int16, or float32 in [-1, 1]) and return the events it caused."""
        if self._upsampler is not None:
            if pcm.dtype != np.int16:
                raise VadError("8 kHz audio must be int16 samples")
            pcm = self._upsampler.process(pcm)
        audio = _as_float(pcm)
        self._pending = np.concatenate([self._pending, audio]) if len(self._pending) else audio
        n = len(self._pending) // WINDOW
        if n == 0:
            return []
        block = self._pending[: n * WINDOW].reshape(n, WINDOW)
        self._pending = self._pending[n * WINDOW :]
        contexts = np.empty((n, _CONTEXT), np.float32)
        contexts[0] = self._context
        contexts[1:] = block[:-1, -_CONTEXT:]
        self._context = block[-1, -_CONTEXT:].copy()
        probs, self._state = self._model.score(np.concatenate([contexts, block], axis=1), self._state)
        events: list[SpeechStart | SpeechPause | SpeechEnd] = []
        for p in probs:
            event = self._step(float(p))
            if event is not None:
                events.append(event)
            self._scored += WINDOW
        return events

    def _step(self, p: float) -> SpeechStart | SpeechPause | SpeechEnd | None:
        o = self.options
        self.last_probability = p
        window_start = self._scored
        if not self._speaking:
            if p >= o.threshold:
                if self._run_start is None:
                    self._run_start = window_start
                self._run_windows += 1
                if self._run_windows * WINDOW * 1000 >= o.min_speech_ms * VAD_RATE:
                    self._speaking = True
                    self._silent_windows = 0
                    self._last_speech_end = window_start + WINDOW
                    start = max(0, self._run_start - o.pre_roll_ms * VAD_RATE // 1000)
                    self._run_start, self._run_windows = None, 0
                    return SpeechStart(start)
            else:
                self._run_start, self._run_windows = None, 0
            return None
        if p < o.neg_threshold:
            self._silent_windows += 1
            silence_ms = self._silent_windows * WINDOW * 1000 // VAD_RATE
            end = self._last_speech_end + o.post_roll_ms * VAD_RATE // 1000
            if silence_ms >= o.min_silence_ms:
                self._speaking = False
                self._silent_windows = 0
                return SpeechEnd(end)
            if silence_ms >= o.pause_ms and (self._silent_windows - 1) * WINDOW * 1000 < o.pause_ms * VAD_RATE:
                return SpeechPause(end)
        else:
            self._silent_windows = 0
            self._last_speech_end = window_start + WINDOW
        return None


def _as_float(pcm: np.ndarray) -> np.ndarray:
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype == np.float32:
        return pcm
    raise VadError(f"VAD takes int16 or float32 samples, not {pcm.dtype}")
