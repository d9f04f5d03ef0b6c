"""A small L2-regularised logistic regression: numpy-only training and inference.

Lead scoring and deal prediction both use it. Logistic regression is chosen
over a tree ensemble because every score must come with reasons a rep can
read: a feature's contribution to the log-odds is simply
``weight * (value - training mean)``, which ranks the factors honestly.
Weights travel as a small JSON file in ``crm_core/data`` so serving needs no
training library and nothing is fetched at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np


class ModelFileError(ValueError):
    """A weights file is missing, unreadable or does not match the feature set."""


@dataclass(frozen=True, slots=True)
class LogisticModel:
    version: str
    features: tuple[str, ...]
    weights: np.ndarray  # one per feature, on standardised inputs
    bias: float
    mean: np.ndarray  # training mean of each raw feature
    scale: np.ndarray  # training standard deviation (1 where constant)
    metadata: dict[str, Any] = field(default_factory=dict)

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(x) - self.mean) / self.scale
        return z @ self.weights + self.bias

    def probability(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(self.log_odds(x))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Each feature's share of the log-odds relative to an average training example."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.scale * self.weights

    def group_effects(self, x: np.ndarray, groups: dict[str, list[int]]) -> dict[str, float]:
        """Each group's summed contribution (the same interface as ``BoostedTrees.group_effects``)."""
        c = self.contributions(x)
        return {g: float(np.sum(c[idx])) for g, idx in groups.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "features": list(self.features),
            "weights": self.weights.tolist(),
            "bias": self.bias,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], expected_features: tuple[str, ...]) -> "LogisticModel":
        try:
            features = tuple(str(f) for f in data["features"])
            model = cls(
                version=str(data["version"]),
                features=features,
                weights=np.asarray(data["weights"], dtype=np.float64),
                bias=float(data["bias"]),
                mean=np.asarray(data["mean"], dtype=np.float64),
                scale=np.asarray(data["scale"], dtype=np.float64),
                metadata=dict(data.get("metadata") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"malformed model file: {exc}") from exc
        if features != expected_features:
            raise ModelFileError(
                f"model {model.version} was trained on features {list(features)}, "
                f"this code computes {list(expected_features)}; retrain it"
            )
        n = len(features)
        if not (model.weights.shape == model.mean.shape == model.scale.shape == (n,)):
            raise ModelFileError(f"model {model.version}: array shapes do not match {n} features")
        return model


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    features: tuple[str, ...],
    *,
    version: str,
    l2: float = 1.0,
    iterations: int = 50,
    metadata: dict[str, Any] | None = None,
) -> LogisticModel:
    """Newton's method (IRLS) on standardised features; converges in a handful of steps."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0  # never shrink the intercept
    for _ in range(iterations):
        p = _sigmoid(z @ beta)
        gradient = z.T @ (p - y) + penalty * beta
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return LogisticModel(
        version=version,
        features=features,
        weights=beta[:-1],
        bias=float(beta[-1]),
        mean=mean,
        scale=scale,
        metadata=dict(metadata or {}),
    )


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives, negatives = int(y_true.sum()), int((~y_true).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("AUC needs both classes")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y_true].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def load_packaged(name: str, expected_features: tuple[str, ...]) -> LogisticModel:
    """Load ``crm_core/data/<name>``, the weights the training script wrote."""
    try:
        text = resources.files("crm_core").joinpath("data", name).read_text("utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise ModelFileError(f"model file crm_core/data/{name} is missing: {exc}") from exc
    return LogisticModel.from_json(json.loads(text), expected_features)


def save(model: LogisticModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(v, -35, 35)))
