"""Train the deal win-probability model and write crm_core/data/deal_prediction.json.

    .venv/bin/python scripts/train_deal_prediction.py [--n 20000] [--seed 11]

About the data, honestly: no labelled won/lost deal data set with activity
timelines is available offline (nothing on the PyPI index ships one), so the
model is trained on deals drawn from the seeded generator below, whose
ground truth is ``true_log_odds``. The figures it produces show that the
learner recovers a planted signal and is calibrated on data like it; an
organisation's own closed deals should replace the generator when they exist.

The ground truth is not a logistic model of our features: stalling hurts
only past the stage's norm, recency decays linearly and is capped, and
competitor/objection counts saturate.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crm_core.scoring.deal_features import (  # noqa: E402
    FEATURES,
    OPEN_STAGES,
    TYPICAL_DAYS_IN_STAGE,
    DealProfile,
    profile_of,
    vector_of,
)
from crm_core.scoring.logistic_model import fit_logistic, roc_auc, save  # noqa: E402

MODEL_VERSION = "deal-lr-2026.11-synthetic-v1"
OUTPUT = ROOT / "crm_core" / "data" / "deal_prediction.json"
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
TRAIN_SEED, HOLDOUT_SEED = 11, 1011

# ---- the generator's ground truth (log-odds) -----------------------------------------------
STAGE_EFFECT = {"qualification": -1.6, "discovery": -0.9, "demo": -0.3, "proposal": 0.4,
                "negotiation": 1.1}


def true_log_odds(p: DealProfile) -> float:
    z = STAGE_EFFECT[p.stage] + 0.2
    z -= 0.8 * min(max(0.0, p.days_in_stage / TYPICAL_DAYS_IN_STAGE[p.stage] - 1.0), 3.0)
    z -= 0.3 * (math.log10(p.value + 1) - 4.0)  # bigger deals are harder to win
    z -= 0.06 * min(p.days_since_activity, 30.0)
    z += 0.35 * math.log1p(p.activities_30d)
    z += 1.0 * p.sentiment_mean + 1.3 * p.sentiment_trend
    z -= 0.5 * min(p.competitor_hits, 3)
    z -= 0.2 * min(p.objection_hits, 5)
    z += 0.6 if p.budget_hits else 0.0
    return z


@dataclass(frozen=True, slots=True)
class GeneratedDeals:
    deals: list[dict]
    activities: list[list[dict]]
    labels: np.ndarray  # 1 = won
    true_probability: np.ndarray


def generate_deals(n: int, seed: int) -> GeneratedDeals:
    rng = np.random.default_rng(seed)
    deals, timelines, labels, probs = [], [], [], []
    for i in range(n):
        stage = OPEN_STAGES[rng.integers(len(OPEN_STAGES))]
        typical = TYPICAL_DAYS_IN_STAGE[stage]
        days_in_stage = float(rng.gamma(1.6, typical / 1.3))
        entered = NOW - timedelta(days=days_in_stage)
        created = entered - timedelta(days=float(rng.gamma(2.0, 10.0)))
        value = float(round(rng.lognormal(9.5, 1.2), 2))
        engaged = rng.random() < 0.75
        n_acts = int(rng.poisson(6 if engaged else 1.5))
        span = (NOW - created).total_seconds() / 86400
        # Disengaged deals have their activity early in their life.
        offsets = sorted(rng.uniform(0, span if engaged else span * 0.5, n_acts))
        tone = rng.normal(0.05, 0.3)
        drift = rng.normal(0.0, 0.25)
        competitor_rate = 0.25 if rng.random() < 0.3 else 0.02
        acts = [{"kind": "stage_change", "occurred_at": entered.isoformat(), "body": {"to": stage}}]
        for k, off in enumerate(offsets):
            at = created + timedelta(days=float(off))
            if rng.random() < 0.55:
                progress = k / max(1, n_acts - 1)
                sentiment = float(np.clip(tone + drift * (progress - 0.5) * 2 + rng.normal(0, 0.15), -1, 1))
                acts.append({"kind": "call", "occurred_at": at.isoformat(), "body": {
                    "sentiment": round(sentiment, 3),
                    "objection_hits": int(rng.poisson(0.4)),
                    "competitor_hits": int(rng.random() < competitor_rate),
                    "budget_hits": int(rng.random() < 0.15),
                }})
            else:
                acts.append({"kind": "note", "occurred_at": at.isoformat(), "body": {"text": "…"}})
        deal = {"id": f"00000000-0000-4000-8000-{i:012d}", "stage": stage, "value": value,
                "created_at": created.isoformat(), "name": f"Deal {i}"}
        p = 1 / (1 + math.exp(-true_log_odds(profile_of(deal, acts, NOW))))
        deals.append(deal)
        timelines.append(acts)
        probs.append(p)
        labels.append(int(rng.random() < p))
    return GeneratedDeals(deals, timelines, np.asarray(labels), np.asarray(probs))


def feature_matrix(gen: GeneratedDeals) -> np.ndarray:
    return np.vstack([vector_of(profile_of(d, a, NOW)) for d, a in zip(gen.deals, gen.activities)])


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: |observed rate - mean prediction| over probability deciles."""
    order = np.argsort(p)
    total = 0.0
    for chunk in np.array_split(order, bins):
        total += len(chunk) * abs(float(y[chunk].mean()) - float(p[chunk].mean()))
    return total / len(p)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    train = generate_deals(args.n, args.seed)
    holdout = generate_deals(5000, HOLDOUT_SEED)
    model = fit_logistic(feature_matrix(train), train.labels, FEATURES, version=MODEL_VERSION, l2=1.0,
                         metadata={"data": f"synthetic: scripts/train_deal_prediction.py "
                                           f"generate_deals(n={args.n}, seed={args.seed})",
                                   "win_rate": round(float(train.labels.mean()), 4)})
    p = model.probability(feature_matrix(holdout))
    model.metadata["holdout_auc"] = round(roc_auc(holdout.labels, p), 4)
    model.metadata["holdout_oracle_auc"] = round(roc_auc(holdout.labels, holdout.true_probability), 4)
    model.metadata["holdout_ece"] = round(calibration_error(holdout.labels, p), 4)
    save(model, args.output)
    print(f"wrote {args.output} ({MODEL_VERSION}); {model.metadata}")


if __name__ == "__main__":
    main()
