"""Organisations' own gradient-boosted models: held-out quality, fit time, scoring speed.

    .venv/bin/python scripts/bench/org_models.py [--quick]

Trains the organisation model (``crm_core.scoring.boosted_training.fit_boosted``, the
learner ``train_org_lead_model`` / ``train_org_deal_model`` use) on the
training scripts' seeded synthetic generators and scores held-out draws with
seeds it never saw: AUC next to the shipped logistic model and the
generator's own (oracle) AUC, calibration error, seconds to fit, and
per-call latency of ``score_lead`` / ``predict_deal`` with the exported JSON
trees, occlusion reasons included. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from crm_core.scoring.boosted_training import calibration_error, fit_boosted  # noqa: E402
from crm_core.scoring.boosted_trees import BoostedTrees  # noqa: E402
from crm_core.scoring.deal_features import FEATURES as DEAL_FEATURES  # noqa: E402
from crm_core.scoring.deal_prediction import deal_model, predict_deal  # noqa: E402
from crm_core.scoring.lead_features import FEATURES as LEAD_FEATURES  # noqa: E402
from crm_core.scoring.lead_scoring import lead_model, score_lead  # noqa: E402
from crm_core.scoring.logistic_model import roc_auc  # noqa: E402
from train_deal_prediction import NOW, generate_deals  # noqa: E402
from train_deal_prediction import feature_matrix as deal_matrix  # noqa: E402
from train_lead_scoring import feature_matrix as lead_matrix  # noqa: E402
from train_lead_scoring import generate_leads  # noqa: E402


def _latency_us(fn, items) -> tuple[float, float]:
    times = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - started) * 1e6)
    return round(float(np.percentile(times, 50)), 1), round(float(np.percentile(times, 99)), 1)


def _stored(model: BoostedTrees, features: tuple[str, ...]) -> BoostedTrees:
    # score with what a database row gives back, not the in-memory export
    return BoostedTrees.from_json(json.loads(json.dumps(model.to_json())), features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data, under a minute")
    args = parser.parse_args()
    n_train, n_test, n_latency = (3000, 3000, 500) if args.quick else (20000, 10000, 3000)
    out: dict = {"bench": "org_models", "quick": args.quick, "n_train": n_train, "n_test": n_test,
                 "data": "synthetic (seeded generators in scripts/train_*.py)"}

    train, test = generate_leads(n_train, seed=9001), generate_leads(n_test, seed=9002)
    import sklearn  # noqa: F401 - imported before the clock starts: fit time, not import time

    started = time.perf_counter()
    lead = _stored(fit_boosted(lead_matrix(train.leads), train.labels, LEAD_FEATURES, version="bench"),
                   LEAD_FEATURES)
    out["lead_fit_s"] = round(time.perf_counter() - started, 2)
    x = lead_matrix(test.leads)
    p = lead.probability(x)
    out.update(lead_trees=len(lead.roots), lead_auc=round(roc_auc(test.labels, p), 4),
               lead_shipped_auc=round(roc_auc(test.labels, lead_model().probability(x)), 4),
               lead_oracle_auc=round(roc_auc(test.labels, test.true_probability), 4),
               lead_ece=round(calibration_error(test.labels, p), 4))
    out["score_lead_p50_us"], out["score_lead_p99_us"] = _latency_us(
        lambda item: score_lead(item, lead), test.leads[:n_latency])

    dtrain, dtest = generate_deals(n_train, seed=9003), generate_deals(n_test, seed=9004)
    started = time.perf_counter()
    deal = _stored(fit_boosted(deal_matrix(dtrain), dtrain.labels, DEAL_FEATURES, version="bench"), DEAL_FEATURES)
    out["deal_fit_s"] = round(time.perf_counter() - started, 2)
    x = deal_matrix(dtest)
    p = deal.probability(x)
    out.update(deal_trees=len(deal.roots), deal_auc=round(roc_auc(dtest.labels, p), 4),
               deal_shipped_auc=round(roc_auc(dtest.labels, deal_model().probability(x)), 4),
               deal_oracle_auc=round(roc_auc(dtest.labels, dtest.true_probability), 4),
               deal_ece=round(calibration_error(dtest.labels, p), 4))
    pairs = list(zip(dtest.deals, dtest.activities))[:n_latency]
    out["predict_deal_p50_us"], out["predict_deal_p99_us"] = _latency_us(
        lambda item: predict_deal(item[0], item[1], now=NOW, model=deal), pairs)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
