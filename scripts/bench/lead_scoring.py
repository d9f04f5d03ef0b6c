"""Lead scoring and deal prediction: held-out quality of the shipped models, and speed.

    .venv/bin/python scripts/bench/lead_scoring.py [--quick]

Held-out data comes from the training scripts' seeded generators with seeds
the models never saw (synthetic: see those scripts for why). Prints AUC of
the shipped model, the generator's own (oracle) AUC as the ceiling, a
one-feature baseline, calibration error, and per-call latency of
``score_lead`` / ``predict_deal``. The last line is one JSON object.
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

from crm_core.scoring.deal_prediction import deal_model, predict_deal  # noqa: E402
from crm_core.scoring.lead_features import FEATURES as LEAD_FEATURES  # noqa: E402
from crm_core.scoring.lead_scoring import lead_model, score_lead  # noqa: E402
from crm_core.scoring.logistic_model import roc_auc  # noqa: E402
from train_deal_prediction import NOW, calibration_error, generate_deals  # noqa: E402
from train_lead_scoring import feature_matrix as lead_matrix  # noqa: E402
from train_lead_scoring import generate_leads  # noqa: E402

BENCH_SEED = 424242


def _latency_us(fn, items) -> tuple[float, float]:
    times = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - started) * 1e6)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 3000 if args.quick else 20000

    leads = generate_leads(n, BENCH_SEED)
    scores = np.asarray([score_lead(lead).probability for lead in leads.leads])
    x = lead_matrix(leads.leads)
    source_rule = x[:, LEAD_FEATURES.index("source_referral")] + x[:, LEAD_FEATURES.index("source_inbound_demo")]
    lead_p50, lead_p99 = _latency_us(score_lead, leads.leads[:2000])

    deals = generate_deals(n, BENCH_SEED)
    probs = np.asarray([predict_deal(d, a, now=NOW).probability for d, a in zip(deals.deals, deals.activities)])
    pairs = list(zip(deals.deals, deals.activities))[:2000]
    deal_p50, deal_p99 = _latency_us(lambda da: predict_deal(da[0], da[1], now=NOW), pairs)

    result = {
        "bench": "lead_scoring",
        "quick": args.quick,
        "data": "synthetic held-out (seeded generators in scripts/train_*.py)",
        "n": n,
        "lead_model": lead_model().version,
        "lead_auc": round(roc_auc(leads.labels, scores), 4),
        "lead_oracle_auc": round(roc_auc(leads.labels, leads.true_probability), 4),
        "lead_source_only_auc": round(roc_auc(leads.labels, source_rule), 4),
        "lead_conversion_rate": round(float(leads.labels.mean()), 4),
        "score_lead_p50_us": round(lead_p50, 1),
        "score_lead_p99_us": round(lead_p99, 1),
        "deal_model": deal_model().version,
        "deal_auc": round(roc_auc(deals.labels, probs), 4),
        "deal_oracle_auc": round(roc_auc(deals.labels, deals.true_probability), 4),
        "deal_ece": round(calibration_error(deals.labels, probs), 4),
        "predict_deal_p50_us": round(deal_p50, 1),
        "predict_deal_p99_us": round(deal_p99, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
