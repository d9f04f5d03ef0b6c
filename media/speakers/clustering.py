"""Spherical k-means over unit speaker embeddings, for ``OnlineDiarizer``."""

from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row (last axis) scaled to unit length; zero rows stay zero."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def kmeans(
    points: np.ndarray, init: np.ndarray, iterations: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means: (owner per point, unit centres). Empty clusters keep their centre."""
    centres = unit_rows(init)
    owner = np.argmax(points @ centres.T, axis=1)
    for _ in range(iterations):
        new = centres.copy()
        for j in range(len(centres)):
            members = points[owner == j]
            if len(members):
                new[j] = members.mean(axis=0)
        new = unit_rows(new)
        owner_new = np.argmax(points @ new.T, axis=1)
        centres = new
        if np.array_equal(owner_new, owner):
            break
        owner = owner_new
    return owner, centres


def farthest_first(points: np.ndarray, k: int) -> np.ndarray:
    """Deterministic k-means seeds: the point least like the mean, then each least like the chosen."""
    chosen = [int(np.argmin(points @ points.mean(axis=0)))]
    while len(chosen) < k:
        chosen.append(int(np.argmin(np.max(points @ points[chosen].T, axis=1))))
    return points[chosen]
