"""Retraining lead scoring on one organisation's own history, on demand.

Labels come from lead status: ``converted`` = 1, ``unqualified`` = 0. With
enough of both (``MIN_PER_CLASS``), a logistic regression over the same
features as the shipped model is fitted on a seeded 75 % split and compared
with the shipped model on the other 25 %. It is stored in ``scoring_models``
(versioned) and made the organisation's active model only if it scores a
higher held-out AUC: an organisation never gets a model that does worse
than the default on its own leads; activating one clears the organisation's
``scored_at`` so the re-scoring job scores every open lead with it. Below the
minimum, the shipped model stays (``TrainingRefused`` says why).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg
import numpy as np

from crm_core.lead_features import FEATURES, profile_of, vector_of
from crm_core.lead_scoring import lead_model
from crm_core.logistic_model import LogisticModel, fit_logistic, roc_auc
from crm_core.lead_engagement import LEAD_COLUMNS, engagement_by_lead

MIN_PER_CLASS = 50
HOLDOUT_FRACTION = 0.25


class TrainingRefused(ValueError):
    """Not enough labelled leads (or only one class) to train on."""


@dataclass(frozen=True, slots=True)
class TrainingResult:
    version: str
    examples: int
    conversion_rate: float
    holdout_auc: float
    shipped_holdout_auc: float
    activated: bool


async def train_org_lead_model(conn: asyncpg.Connection, org_id: str, *, seed: int = 0) -> TrainingResult:
    rows = await conn.fetch(
        f"SELECT {LEAD_COLUMNS} FROM leads WHERE org_id = $1 AND status IN ('converted', 'unqualified')",
        org_id,
    )
    labels = np.asarray([1 if r["status"] == "converted" else 0 for r in rows])
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if min(positives, negatives) < MIN_PER_CLASS:
        raise TrainingRefused(
            f"need at least {MIN_PER_CLASS} converted and {MIN_PER_CLASS} unqualified leads, "
            f"have {positives} and {negatives}"
        )
    engagement = await engagement_by_lead(conn, [r["id"] for r in rows])
    x = np.vstack([vector_of(profile_of({**dict(r), "engagement": engagement[r["id"]]})) for r in rows])
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = int(len(rows) * (1 - HOLDOUT_FRACTION))
    train, test = order[:cut], order[cut:]
    if len(set(labels[test])) < 2:
        raise TrainingRefused("the held-out split has one class only; add more labelled leads")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    version = f"lead-lr-org-{str(org_id)[:8]}-{stamp}-{len(rows)}"
    model = fit_logistic(x[train], labels[train], FEATURES, version=version, l2=2.0, metadata={
        "data": f"organisation {org_id}: {len(rows)} converted/unqualified leads",
    })
    auc = roc_auc(labels[test], model.probability(x[test]))
    shipped_auc = roc_auc(labels[test], lead_model().probability(x[test]))
    activated = auc > shipped_auc
    metrics = {"holdout_auc": round(auc, 4), "shipped_holdout_auc": round(shipped_auc, 4),
               "examples": len(rows), "conversion_rate": round(positives / len(rows), 4)}
    model.metadata.update(metrics)
    async with conn.transaction():
        if activated:
            await conn.execute("UPDATE scoring_models SET active = false WHERE org_id = $1 AND kind = 'lead'",
                               org_id)
            await conn.execute("UPDATE leads SET scored_at = NULL WHERE org_id = $1 AND status <> 'converted'",
                               org_id)
        await conn.execute(
            "INSERT INTO scoring_models (org_id, kind, version, model, metrics, active) "
            "VALUES ($1, 'lead', $2, $3, $4, $5)",
            org_id, version, model.to_json(), metrics, activated,
        )
    return TrainingResult(version, len(rows), metrics["conversion_rate"], auc, shipped_auc, activated)


_CACHE: dict[str, LogisticModel] = {}


async def active_lead_model(conn: asyncpg.Connection, org_id: str) -> LogisticModel:
    """The organisation's active trained model, else the shipped one."""
    row = await conn.fetchrow(
        "SELECT version, model FROM scoring_models WHERE org_id = $1 AND kind = 'lead' AND active", org_id
    )
    if row is None:
        return lead_model()
    model = _CACHE.get(row["version"])
    if model is None:
        data = row["model"] if isinstance(row["model"], dict) else json.loads(row["model"])
        model = LogisticModel.from_json(data, FEATURES)
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[row["version"]] = model
    return model
