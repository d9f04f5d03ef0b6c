"""The JSON tree ensemble: it scores exactly as scikit-learn does, and a bad row cannot run or loop."""

import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from crm_core.scoring.boosted_training import export_hist_gradient_boosting, fit_boosted
from crm_core.scoring.boosted_trees import BoostedTrees, TreeModelError

FEATURES = tuple(f"f{i}" for i in range(6))


def _data(n: int, seed: int, missing: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 5] = rng.integers(0, 2, n)  # a 0/1 column, like our one-hot features
    z = np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.8 * x[:, 5]
    x[rng.random((n, 6)) < missing] = np.nan
    y = (z + rng.normal(scale=0.7, size=n) > 0).astype(int)
    return x, y


@pytest.mark.parametrize("params", [
    {"max_iter": 60},
    {"max_iter": 300, "early_stopping": True, "learning_rate": 0.2, "max_leaf_nodes": 63},
    {"max_iter": 40, "max_depth": 2, "l2_regularization": 3.0},
])
def test_the_json_evaluator_reproduces_sklearn_including_missing_values(params):
    x, y = _data(2500, 1, missing=0.1)
    clf = HistGradientBoostingClassifier(random_state=0, **params).fit(x, y)
    model = export_hist_gradient_boosting(clf, FEATURES, version="t", reference=np.zeros((4, 6)))
    stored = BoostedTrees.from_json(json.loads(json.dumps(model.to_json())), FEATURES)
    rng = np.random.default_rng(2)
    probe = rng.normal(scale=3.0, size=(3000, 6))  # wider than training, so past every threshold
    probe[rng.random(probe.shape) < 0.3] = np.nan
    probe[:5] = np.nan  # all missing
    expected = clf.predict_proba(probe)[:, 1]
    assert np.max(np.abs(stored.probability(probe) - expected)) < 1e-9
    assert np.max(np.abs(stored.log_odds(probe) - clf.decision_function(probe))) < 1e-9
    # a column with no missing values in training still sends NaN somewhere sklearn agrees with
    clean_x, clean_y = _data(800, 3, missing=0.0)
    clean = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(clean_x, clean_y)
    exported = export_hist_gradient_boosting(clean, FEATURES, version="c", reference=np.zeros((1, 6)))
    assert np.max(np.abs(exported.probability(probe) - clean.predict_proba(probe)[:, 1])) < 1e-9


def test_group_effects_measure_what_the_trees_use():
    x, y = _data(3000, 4, missing=0.0)
    model = fit_boosted(x, y, FEATURES, version="g", seed=0)
    groups = {"sine": [0], "product": [1, 2], "flag": [5], "noise": [3, 4]}
    strong = np.array([0.78, 2.0, 2.0, 0.0, 0.0, 1.0])  # every planted term high
    effects = model.group_effects(strong, groups)
    assert effects["product"] > 0.5 and effects["flag"] > 0.1 and effects["sine"] > 0.1
    assert abs(effects["noise"]) < min(effects["product"], effects["flag"])
    weak = np.array([-0.78, 2.0, -2.0, 0.0, 0.0, 0.0])
    assert model.group_effects(weak, groups)["product"] < -0.5
    # walking only the trees that split on a group gives the full occlusion difference
    for x in (strong, weak, np.array([0.1, -0.3, 0.5, 1.0, -1.0, 0.0])):
        for group, idx in groups.items():
            copies = np.repeat(x[None, :], len(model.reference), axis=0)
            copies[:, idx] = model.reference[:, idx]
            full = model.log_odds(x)[0] - model.log_odds(copies).mean()
            assert model.group_effects(x, groups)[group] == pytest.approx(full, abs=1e-9)


def _tiny() -> dict:
    return {"format": "boosted-trees-v1", "version": "x", "features": list(FEATURES), "baseline": 0.1,
            "reference": [[0.0] * 6],
            "trees": [{"feature": [2, 0, 0], "threshold": [0.5, None, None], "left": [1, -1, -1],
                       "right": [2, -1, -1], "value": [0.0, -1.0, 1.0], "missing_left": [1, 0, 0],
                       "leaf": [0, 1, 1]}]}


def test_a_hand_written_tree_reads_and_scores():
    model = BoostedTrees.from_json(_tiny(), FEATURES)
    z = model.log_odds(np.array([[0, 0, 0.2, 0, 0, 0], [0, 0, 0.9, 0, 0, 0], [0, 0, np.nan, 0, 0, 0]]))
    assert z.tolist() == [pytest.approx(-0.9), pytest.approx(1.1), pytest.approx(-0.9)]


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["trees"][0].update(left=[0, -1, -1]), "not after its parent"),  # a loop
    (lambda d: d["trees"][0].update(right=[7, -1, -1]), "out of range"),
    (lambda d: d["trees"][0].update(feature=[99, 0, 0]), "feature index"),
    (lambda d: d["trees"][0].update(value=[0.0, 1.0]), "one entry per node"),
    (lambda d: d["trees"][0].update(threshold=[None, None, None]), "threshold"),
    (lambda d: d.update(features=["a"]), "retrain"),
    (lambda d: d.update(format="pickle"), "format"),
    (lambda d: d.update(trees=[]), "trees"),
    (lambda d: d.update(reference=[[1.0]]), "reference"),
    (lambda d: d.update(baseline="__import__('os')"), "malformed"),
    (lambda d: d["trees"][0].update(leaf="yes"), "malformed"),
])
def test_a_damaged_row_is_refused_with_a_reason(damage, message):
    data = _tiny()
    damage(data)
    with pytest.raises(TreeModelError, match=message):
        BoostedTrees.from_json(data, FEATURES)


def test_scoring_and_the_api_load_without_scikit_learn():
    """Only training imports scikit-learn: a server that scores never loads it."""
    import subprocess
    import sys

    code = ("import sys, crm_core.api.routes, crm_core.scoring.rescoring, crm_core.scoring.deal_inputs; "
            "assert 'sklearn' not in sys.modules, 'sklearn was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
