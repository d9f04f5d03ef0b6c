"""Train the lead-scoring model and write crm_core/data/lead_scoring.json.

    .venv/bin/python scripts/train_lead_scoring.py [--n 20000] [--seed 7]

About the data, honestly: no labelled B2B lead-conversion data set is
available offline (we searched the PyPI package index: the lead-scoring and
"bank marketing" packages there ship code, not data). So the model is trained
on leads drawn from the seeded generator below, whose ground truth is written
out in ``TRUE_EFFECTS`` and ``true_log_odds``. The figures this produces say
that the learner recovers a planted signal, not how well it predicts real
customers; an organisation's own converted/lost history should replace the
generator when it exists (same script, swap ``generate_leads``).

The ground truth is deliberately not a logistic model of our features: the
company-size effect is a bell curve over log size, sentiment only hurts when
the lead has actually been on several calls, and keyword hits saturate, so
the held-out AUC sits below the generator's own (oracle) AUC.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crm_core.scoring.lead_features import FEATURES, profile_of, vector_of  # noqa: E402
from crm_core.scoring.logistic_model import fit_logistic, roc_auc, save  # noqa: E402

MODEL_VERSION = "lead-lr-2026.11-synthetic-v1"
OUTPUT = ROOT / "crm_core" / "data" / "lead_scoring.json"

# ---- the generator's ground truth (log-odds effects) -------------------------------------
BASE_LOG_ODDS = -3.4
TRUE_EFFECTS = {
    "seniority": {"c_level": 1.0, "vp": 0.9, "director": 0.6, "manager": 0.2, "individual": 0.0},
    "industry": {"software": 0.6, "financial_services": 0.4, "healthcare": 0.2, "manufacturing": 0.0,
                 "retail": -0.2, "education": -0.5, "other": -0.1},
    "source": {"referral": 1.3, "inbound_demo": 1.1, "webinar": 0.4, "event": 0.3, "website": 0.2,
               "paid_ads": 0.0, "cold_outbound": -0.5, "purchased_list": -0.9, "other": -0.2},
    "email": {"corporate": 0.0, "free": -0.7, "missing": -0.3},
}
SIZE_PEAK_LOG10, SIZE_WIDTH, SIZE_EFFECT, SIZE_UNKNOWN = 2.7, 0.9, 0.9, -0.3


def true_log_odds(p) -> float:
    """The generator's rule for one LeadProfile (see the module docstring)."""
    e = p.engagement
    z = BASE_LOG_ODDS
    z += TRUE_EFFECTS["seniority"][p.seniority]
    z += TRUE_EFFECTS["industry"][p.industry]
    z += TRUE_EFFECTS["source"][p.source]
    z += TRUE_EFFECTS["email"][p.email_kind]
    if p.company_size is None:
        z += SIZE_UNKNOWN
    else:
        z += SIZE_EFFECT * math.exp(-((math.log10(p.company_size + 1) - SIZE_PEAK_LOG10) / SIZE_WIDTH) ** 2)
    z += 0.45 * math.log1p(e.calls) + 0.35 * math.log1p(e.talk_time_s / 60)
    if e.avg_sentiment is not None:
        z += 1.2 * e.avg_sentiment
        if e.calls >= 2 and e.avg_sentiment < -0.3:
            z -= 0.5  # repeated bad calls: worse than the average suggests
    z += 0.35 * min(e.keyword_hits, 5)
    z -= 0.25 * min(e.objection_hits, 6)
    return z


# ---- what the generated leads look like ---------------------------------------------------
TITLES = {
    "c_level": ["CEO", "Chief Technology Officer", "Founder & CEO", "CFO", "Co-founder", "President",
                "Chief Revenue Officer", "Owner"],
    "vp": ["VP Sales", "Vice President of Marketing", "SVP Engineering", "VP, Customer Success EMEA"],
    "director": ["Director of Operations", "Head of Growth", "Sales Director", "IT Director"],
    "manager": ["Marketing Manager", "Engineering Manager", "Team Lead, Support", "Procurement Manager"],
    "individual": ["Sales Representative", "Software Engineer", "Analyst", "Account Executive",
                   "Coordinator", "Consultant", ""],
}
SENIORITY_P = {"c_level": 0.1, "vp": 0.12, "director": 0.18, "manager": 0.25, "individual": 0.35}
INDUSTRY_NAMES = {
    "software": ["SaaS", "Software", "Cloud Technology"],
    "financial_services": ["Fintech", "Banking", "Insurance"],
    "healthcare": ["Healthcare", "Hospital & Health Care", "Biotech"],
    "manufacturing": ["Manufacturing", "Industrial Automation"],
    "retail": ["Retail", "E-commerce"],
    "education": ["Higher Education", "EdTech"],
    "other": ["Nonprofit", "Government", "Real Estate", None],
}
SOURCE_NAMES = {
    "referral": ["referral", "Partner"], "inbound_demo": ["demo-request", "contact form", "inbound"],
    "webinar": ["webinar"], "event": ["conference", "trade show"], "website": ["website", "organic"],
    "paid_ads": ["google_ads", "LinkedIn Ads"], "cold_outbound": ["cold call", "outbound"],
    "purchased_list": ["purchased list", "list import"], "other": ["", None, "misc"],
}
SOURCE_P = {"referral": 0.08, "inbound_demo": 0.12, "webinar": 0.08, "event": 0.07, "website": 0.15,
            "paid_ads": 0.12, "cold_outbound": 0.2, "purchased_list": 0.1, "other": 0.08}
# Warmer sources get called more (so engagement and source are correlated, as in life).
SOURCE_CALL_RATE = {"referral": 2.0, "inbound_demo": 2.2, "webinar": 1.2, "event": 1.2, "website": 1.0,
                    "paid_ads": 0.9, "cold_outbound": 0.8, "purchased_list": 0.5, "other": 0.7}


@dataclass(frozen=True, slots=True)
class GeneratedLeads:
    leads: list[dict]
    labels: np.ndarray  # 1 = converted
    true_probability: np.ndarray


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys])
    return keys[rng.choice(len(keys), p=p / p.sum())]


def generate_leads(n: int, seed: int) -> GeneratedLeads:
    rng = np.random.default_rng(seed)
    leads, labels, probs = [], [], []
    for i in range(n):
        seniority = _pick(rng, SENIORITY_P)
        industry = str(rng.choice(list(INDUSTRY_NAMES)))
        source = _pick(rng, SOURCE_P)
        size = None if rng.random() < 0.12 else int(rng.lognormal(mean=5.0, sigma=1.8))
        email_roll = rng.random()
        domain = ("gmail.com" if email_roll < 0.15 else "outlook.com" if email_roll < 0.22
                  else None if email_roll < 0.27 else f"company{i}.com")
        calls = int(rng.poisson(SOURCE_CALL_RATE[source] * (1.4 if seniority != "individual" else 1.0)))
        talk_s = float(sum(rng.gamma(2.0, 240.0) for _ in range(calls)))
        sentiment = None if calls == 0 else float(np.clip(rng.normal(0.1, 0.35), -1, 1))
        keyword_hits = int(rng.poisson(0.8 * calls * (1.5 if (sentiment or 0) > 0.2 else 0.7)))
        objection_hits = int(rng.poisson(0.5 * calls))
        names = INDUSTRY_NAMES[industry]
        lead = {
            "first_name": "Lead", "last_name": str(i),
            "title": str(rng.choice(TITLES[seniority])),
            "company_size": size,
            "industry": names[rng.integers(len(names))],
            "source": SOURCE_NAMES[source][rng.integers(len(SOURCE_NAMES[source]))],
            "email": None if domain is None else f"lead{i}@{domain}",
            "engagement": {"calls": calls, "talk_time_s": talk_s, "avg_sentiment": sentiment,
                           "keyword_hits": keyword_hits, "objection_hits": objection_hits},
        }
        p = 1 / (1 + math.exp(-true_log_odds(profile_of(lead))))
        leads.append(lead)
        probs.append(p)
        labels.append(int(rng.random() < p))
    return GeneratedLeads(leads, np.asarray(labels), np.asarray(probs))


def feature_matrix(leads: list[dict]) -> np.ndarray:
    return np.vstack([vector_of(profile_of(lead)) for lead in leads])


TRAIN_SEED, HOLDOUT_SEED = 7, 1007


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    train = generate_leads(args.n, args.seed)
    holdout = generate_leads(5000, HOLDOUT_SEED)
    metadata = {
        "data": f"synthetic: scripts/train_lead_scoring.py generate_leads(n={args.n}, seed={args.seed})",
        "conversion_rate": round(float(train.labels.mean()), 4),
    }
    model = fit_logistic(feature_matrix(train.leads), train.labels, FEATURES,
                         version=MODEL_VERSION, l2=1.0, metadata=metadata)
    auc = roc_auc(holdout.labels, model.probability(feature_matrix(holdout.leads)))
    model.metadata["holdout_auc"] = round(auc, 4)
    model.metadata["holdout_oracle_auc"] = round(roc_auc(holdout.labels, holdout.true_probability), 4)
    save(model, args.output)
    print(f"wrote {args.output} ({MODEL_VERSION}); held-out AUC {auc:.4f}, "
          f"oracle {model.metadata['holdout_oracle_auc']}, conversion rate {metadata['conversion_rate']}")


if __name__ == "__main__":
    main()
