"""Accuracy of coaching's sentiment models on a named, held-out labelled set.

    python scripts/bench/sentiment.py [--quick] [--size N]

Scores VADER (as shipped, with our sales terms, and plain) and, when the
``sentiment-model`` extra is installed, the MiniLM + logistic-regression head,
on the same held-out rows of the CrowdFlower Twitter sentiment set (see
sentiment_corpus.py; needs the ``sentiment-bench`` extra). The head never saw
these rows (sentiment_train.py trains on the other split). Reports 3-class
accuracy (negative/neutral/positive), macro-F1, and polarity accuracy on the
rows labelled positive or negative. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sentiment_corpus import CORPUS_NAME, LABELS, load_split

from coaching.sentiment import EmbeddingSentiment, SentimentModelUnavailable, VaderSentiment


def report(name: str, predicted: np.ndarray, truth: np.ndarray, seconds: float) -> dict:
    f1s = []
    for k in range(len(LABELS)):
        tp = int(((predicted == k) & (truth == k)).sum())
        fp = int(((predicted == k) & (truth != k)).sum())
        fn = int(((predicted != k) & (truth == k)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    polar = truth != 1
    # polarity: on rows a human called positive/negative, did the model lean the same way?
    return {"model": name, "accuracy": round(float((predicted == truth).mean()), 4),
            "macro_f1": round(float(np.mean(f1s)), 4),
            "polarity_accuracy": round(float((predicted[polar] == truth[polar]).mean()), 4),
            "ms_per_text": round(seconds * 1000 / len(truth), 3)}


def vader_labels(model: VaderSentiment, texts: list[str]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    scores = np.array([model.score(t) for t in texts])
    seconds = time.perf_counter() - started
    return np.where(scores >= 0.05, 2, np.where(scores <= -0.05, 0, 1)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 held-out rows (< 1 min)")
    parser.add_argument("--size", type=int, default=None, help="held-out rows to score")
    args = parser.parse_args()
    size = args.size or (600 if args.quick else 4000)
    _train, held_out = load_split()
    rows = held_out[:size]
    texts = [t for t, _ in rows]
    truth = np.array([label for _, label in rows])
    results = []
    for model in (VaderSentiment(sales_terms=True), VaderSentiment(sales_terms=False)):
        predicted, seconds = vader_labels(model, texts)
        results.append(report(model.name if model.name != "vader" else "vader-plain",
                              predicted, truth, seconds))
    head_note = None
    try:
        head = EmbeddingSentiment()
        started = time.perf_counter()
        probabilities = head.probabilities(texts)
        results.append(report(head.name, probabilities.argmax(axis=1), truth,
                              time.perf_counter() - started))
    except SentimentModelUnavailable as exc:
        head_note = f"skipped: {exc}"
    for r in results:
        print(f"{r['model']:>14}: accuracy {r['accuracy']:.3f}  macro-F1 {r['macro_f1']:.3f}  "
              f"polarity {r['polarity_accuracy']:.3f}  {r['ms_per_text']} ms/text")
    majority = float(np.bincount(truth, minlength=3).max() / len(truth))
    out = {"bench": "sentiment", "corpus": CORPUS_NAME, "held_out_rows": len(rows),
           "majority_baseline": round(majority, 4), "results": results}
    if head_note:
        out["minilm_logreg"] = head_note
    print(json.dumps(out))


if __name__ == "__main__":
    main()
