"""A gradient-boosted tree ensemble as plain JSON, evaluated with numpy.

Organisations' own lead and deal models are fitted with scikit-learn
(``crm_core.scoring.boosted_training``) and exported here as node arrays, one set per
tree: split feature, threshold, left/right child, leaf value and the side
that missing values (NaN) take, plus the baseline log-odds. Scoring reads
only this JSON: the hot path never imports scikit-learn, and a database row
is data that is checked on load, never code (no pickle). ``from_json``
refuses arrays of the wrong shape, out-of-range indices and children that
do not come after their parent, so every walk ends within the tree's size.

Reasons (``group_effects``) come from occlusion: a group of features (the
title's one-hot columns, the company-size columns, ...) is replaced by the
values of each of a few reference rows kept from the training data, and the
group's effect is the lead's log-odds minus the mean log-odds of those
occluded copies. A positive effect means "this lead's value of the group
raises the score compared with typical training leads". Unlike a linear
model's contributions the effects need not add up to the total, since trees
let groups interact, but each one is a direct, honest what-if on the model
that is actually scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMAT = "boosted-trees-v1"
MAX_TREES = 2000
MAX_NODES = 500_000  # all trees together
MAX_REFERENCE_ROWS = 256


class TreeModelError(ValueError):
    """A stored tree ensemble is malformed or does not match the features this code computes."""


@dataclass(frozen=True, slots=True)
class BoostedTrees:
    version: str
    features: tuple[str, ...]
    baseline: float  # log-odds before any tree
    # All trees' nodes in flat arrays; ``roots[t]`` is tree t's first node. Child indices
    # are flat too. Leaves have feature 0 and point to themselves.
    roots: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    missing_left: np.ndarray
    leaf: np.ndarray
    depth: int  # longest root-to-leaf walk
    reference: np.ndarray  # rows of training features, the occlusion baseline of ``group_effects``
    metadata: dict[str, Any] = field(default_factory=dict)
    # group -> roots of the trees that split on it (filled on first use; same model, same answer)
    _roots_cache: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    # --- evaluation -------------------------------------------------------------------------

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        return self.baseline + self._leaf_sum(x, self.roots)

    def _leaf_sum(self, x: np.ndarray, roots: np.ndarray) -> np.ndarray:
        """Per row, the sum of the leaf values that the trees starting at ``roots`` give it."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] != len(self.features):
            raise TreeModelError(f"model {self.version} reads {len(self.features)} features, got {x.shape[1]}")
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(roots, (len(x), len(roots))).copy()
        for _ in range(self.depth):
            values = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(values), self.missing_left[node], values <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])  # leaves point to themselves
        return self.value[node].sum(axis=1)

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.log_odds(x), -500, 500)))

    def group_effects(self, x: np.ndarray, groups: dict[str, list[int]]) -> dict[str, float]:
        """Each group's occlusion effect on the log-odds of one example (see the module docstring)."""
        x = np.asarray(x, dtype=np.float64)
        ref = self.reference
        effects = {}
        for group, idx in groups.items():
            # Trees that never split on the group give the same leaf with or without it: only
            # the others can move the difference, so only they are walked.
            roots = self._roots_using(group, idx)
            if len(roots) == 0:
                effects[group] = 0.0
                continue
            copies = np.repeat(x[None, :], len(ref) + 1, axis=0)
            copies[1:, idx] = ref[:, idx]
            z = self._leaf_sum(copies, roots)
            effects[group] = float(z[0] - z[1:].mean())
        return effects

    def _roots_using(self, group: str, idx: list[int]) -> np.ndarray:
        key = (group, tuple(idx))
        roots = self._roots_cache.get(key)
        if roots is None:
            uses = ~self.leaf & np.isin(self.feature, idx)
            tree_of_node = np.searchsorted(self.roots, np.arange(len(self.feature)), side="right") - 1
            roots = self.roots[np.unique(tree_of_node[uses])]
            self._roots_cache[key] = roots
        return roots

    # --- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        trees = []
        bounds = list(self.roots) + [len(self.feature)]
        for t in range(len(self.roots)):
            lo, hi = int(bounds[t]), int(bounds[t + 1])
            leaf = self.leaf[lo:hi]
            trees.append({
                "feature": self.feature[lo:hi].tolist(),
                "threshold": [None if is_leaf else _threshold_out(v)
                              for v, is_leaf in zip(self.threshold[lo:hi], leaf)],
                "left": np.where(leaf, -1, self.left[lo:hi] - lo).tolist(),
                "right": np.where(leaf, -1, self.right[lo:hi] - lo).tolist(),
                "value": self.value[lo:hi].tolist(),
                "missing_left": self.missing_left[lo:hi].astype(int).tolist(),
                "leaf": leaf.astype(int).tolist(),
            })
        return {
            "format": FORMAT,
            "version": self.version,
            "features": list(self.features),
            "baseline": self.baseline,
            "trees": trees,
            "reference": self.reference.tolist(),
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], expected_features: tuple[str, ...]) -> BoostedTrees:
        try:
            if data.get("format") != FORMAT:
                raise TreeModelError(f"not a {FORMAT} model (format {data.get('format')!r})")
            features = tuple(str(f) for f in data["features"])
            if features != expected_features:
                raise TreeModelError(f"model {data.get('version')} was trained on features {list(features)}, "
                                     f"this code computes {list(expected_features)}; retrain it")
            trees = [_tree_arrays(t, len(features), i) for i, t in enumerate(data["trees"])]
            reference = np.asarray(data["reference"], dtype=np.float64)
            baseline = float(data["baseline"])
            version = str(data["version"])
            metadata = dict(data.get("metadata") or {})
        except TreeModelError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TreeModelError(f"malformed tree model: {exc}") from exc
        if not 1 <= len(trees) <= MAX_TREES:
            raise TreeModelError(f"a model holds 1..{MAX_TREES} trees, this one {len(trees)}")
        if reference.ndim != 2 or reference.shape[1] != len(features) or not 1 <= len(reference) <= MAX_REFERENCE_ROWS:
            raise TreeModelError(f"reference must be 1..{MAX_REFERENCE_ROWS} rows of {len(features)} values")
        if not np.isfinite(baseline) or not np.all(np.isfinite(reference)):
            raise TreeModelError("baseline and reference values must be finite")
        return assemble(version, features, baseline, trees, reference, metadata)


@dataclass(frozen=True, slots=True)
class TreeArrays:
    """One tree's nodes; children are indices within the tree (-1 at leaves)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    missing_left: np.ndarray
    leaf: np.ndarray


def _tree_arrays(tree: dict[str, Any], n_features: int, index: int) -> TreeArrays:
    where = f"tree {index}"
    leaf = np.asarray(tree["leaf"], dtype=bool)
    n = len(leaf)
    if n == 0:
        raise TreeModelError(f"{where} has no nodes")
    thresholds = [_threshold_in(v) for v in tree["threshold"]]
    arrays = TreeArrays(
        feature=np.asarray(tree["feature"], dtype=np.int64),
        threshold=np.asarray(thresholds, dtype=np.float64),
        left=np.asarray(tree["left"], dtype=np.int64),
        right=np.asarray(tree["right"], dtype=np.int64),
        value=np.asarray(tree["value"], dtype=np.float64),
        missing_left=np.asarray(tree["missing_left"], dtype=bool),
        leaf=leaf,
    )
    for name in ("feature", "threshold", "left", "right", "value", "missing_left"):
        if getattr(arrays, name).shape != (n,):
            raise TreeModelError(f"{where}: {name} must hold one entry per node ({n})")
    inner = ~leaf
    nodes = np.arange(n)
    # Children after their parent: every walk moves forward, so it ends within n steps.
    if np.any(inner & ((arrays.left <= nodes) | (arrays.right <= nodes) | (arrays.left >= n) | (arrays.right >= n))):
        raise TreeModelError(f"{where}: a child index is out of range or not after its parent")
    if np.any(inner & ((arrays.feature < 0) | (arrays.feature >= n_features))):
        raise TreeModelError(f"{where}: a split feature index is out of range")
    if np.any(inner & np.isnan(arrays.threshold)) or not np.all(np.isfinite(arrays.value[leaf])):
        raise TreeModelError(f"{where}: splits need a threshold and leaves a finite value")
    return arrays


def assemble(version: str, features: tuple[str, ...], baseline: float, trees: list[TreeArrays],
             reference: np.ndarray, metadata: dict[str, Any]) -> BoostedTrees:
    """Flatten per-tree arrays into one ``BoostedTrees`` (leaves point to themselves)."""
    total = sum(len(t.leaf) for t in trees)
    if total > MAX_NODES:
        raise TreeModelError(f"the trees hold {total} nodes, more than {MAX_NODES}")
    roots, parts, depth = [], [], 0
    offset = 0
    for t in trees:
        n = len(t.leaf)
        own = np.arange(n) + offset
        parts.append((
            np.where(t.leaf, 0, t.feature),
            np.where(t.leaf, np.inf, t.threshold),
            np.where(t.leaf, own, t.left + offset),
            np.where(t.leaf, own, t.right + offset),
            np.where(t.leaf, t.value, 0.0),
            t.missing_left,
            t.leaf,
        ))
        roots.append(offset)
        depth = max(depth, _depth(t))
        offset += n
    columns = [np.concatenate(c) for c in zip(*parts)]
    return BoostedTrees(
        version=version, features=features, baseline=float(baseline), roots=np.asarray(roots, dtype=np.int64),
        feature=columns[0].astype(np.int64), threshold=columns[1].astype(np.float64),
        left=columns[2].astype(np.int64), right=columns[3].astype(np.int64),
        value=columns[4].astype(np.float64), missing_left=columns[5].astype(bool), leaf=columns[6].astype(bool),
        depth=depth, reference=np.asarray(reference, dtype=np.float64), metadata=dict(metadata),
    )


# A split may send every non-missing value one way (threshold +inf) and missing ones the
# other; PostgreSQL's jsonb has no Infinity, so infinite thresholds travel as strings.
def _threshold_out(v: float) -> float | str:
    return float(v) if np.isfinite(v) else ("inf" if v > 0 else "-inf")


def _threshold_in(v: Any) -> float:
    if v is None:
        return np.nan  # a leaf
    if v in ("inf", "-inf"):
        return np.inf if v == "inf" else -np.inf
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TreeModelError(f"a threshold must be a number, 'inf' or '-inf', got {v!r}")
    return float(v)


def _depth(t: TreeArrays) -> int:
    # Children come after parents, so one forward pass settles every node's depth.
    depth = np.zeros(len(t.leaf), dtype=np.int64)
    for i in range(len(t.leaf)):
        if not t.leaf[i]:
            depth[t.left[i]] = depth[t.right[i]] = depth[i] + 1
    return int(depth.max())
