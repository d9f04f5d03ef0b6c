"""Retraining lead scoring on one organisation's own history, on demand.

Labels come from lead status: ``converted`` = 1, ``unqualified`` = 0. With
enough of both (``MIN_PER_CLASS``), a gradient-boosted model
(scikit-learn's ``HistGradientBoostingClassifier``, ``crm_core.scoring.boosted_training``)
over the same features as the shipped model is fitted on a seeded 75 % split.
On the other 25 % its AUC is compared with the shipped model's, with the
organisation's ideal-customer-profile rule score's (when one is configured)
and with its current trained model's. It is stored in ``scoring_models`` as a
new version (JSON trees, ``crm_core.scoring.org_models``) and becomes the active one
only if it beats both the shipped model and what the organisation scores
with now (its active model, else its ICP rules, else the shipped model): an
organisation never gets a model that does worse than that on its own leads.
Activating one clears the organisation's ``scored_at`` so the re-scoring job
scores every open lead with it. Below the minimum nothing changes
(``TrainingRefused`` says why).

Reading rows is async; building features and fitting run in a worker thread
(``asyncio.to_thread``), so a training never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np

from crm_core.scoring.boosted_training import calibration_error, fit_boosted
from crm_core.scoring.boosted_trees import FORMAT as TREES_FORMAT
from crm_core.scoring.icp import IcpConfigError, IcpRules, icp_rules_of, score_icp
from crm_core.scoring.engagement import LEAD_COLUMNS, engagement_by_lead
from crm_core.scoring.lead_features import FEATURES, LeadInputError, profile_of, vector_of
from crm_core.scoring.lead_scoring import lead_model
from crm_core.scoring.logistic_model import roc_auc
from crm_core.scoring.org_models import active_model, store_model
from crm_core.scoring.model import ScoringModel

log = logging.getLogger(__name__)

MIN_PER_CLASS = 50
HOLDOUT_FRACTION = 0.25
MAX_EXAMPLES = 50_000  # the newest labelled leads; bounds one training's time and memory


class TrainingRefused(ValueError):
    """Not enough labelled examples (or only one class) to train on."""


@dataclass(frozen=True, slots=True)
class TrainingResult:
    version: str
    examples: int
    conversion_rate: float
    holdout_auc: float
    shipped_holdout_auc: float
    activated: bool
    icp_holdout_auc: float | None = None
    incumbent: str = "shipped"  # what scored the organisation's leads before: shipped | icp | a version
    incumbent_holdout_auc: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / held-out indices; raises ``TrainingRefused`` if the held-out part lacks a class."""
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = int(len(labels) * (1 - HOLDOUT_FRACTION))
    train, test = order[:cut], order[cut:]
    if len(set(labels[test].tolist())) < 2 or len(set(labels[train].tolist())) < 2:
        raise TrainingRefused("a split has one class only; add more labelled examples")
    return train, test


def check_counts(labels: np.ndarray, positive: str, negative: str) -> None:
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if min(positives, negatives) < MIN_PER_CLASS:
        raise TrainingRefused(
            f"need at least {MIN_PER_CLASS} {positive} and {MIN_PER_CLASS} {negative} to train, "
            f"have {positives} and {negatives}"
        )


@dataclass(frozen=True, slots=True)
class _Fitted:
    model_json: dict[str, Any]
    metrics: dict[str, Any]
    auc: float
    shipped_auc: float
    icp_auc: float | None
    incumbent: str
    incumbent_auc: float
    activate: bool


def _fit_and_compare(leads: list[dict[str, Any]], labels: np.ndarray, seed: int, org_id: str,
                     current: ScoringModel | None, rules: IcpRules | None) -> _Fitted:
    vectors, keep = [], []
    for i, lead in enumerate(leads):
        try:
            vectors.append(vector_of(profile_of(lead)))
        except LeadInputError as exc:
            log.warning("lead %s left out of training: %s", lead.get("id"), exc)
            continue
        keep.append(i)
    leads, labels = [leads[i] for i in keep], labels[keep]
    check_counts(labels, "readable converted leads", "readable unqualified leads")
    x = np.vstack(vectors)
    train, test = split(labels, seed)
    model = fit_boosted(x[train], labels[train], FEATURES, version="pending", seed=seed, metadata={
        "data": f"organisation {org_id}: {len(leads)} converted/unqualified leads",
    })
    p = model.probability(x[test])
    auc = roc_auc(labels[test], p)
    shipped_auc = roc_auc(labels[test], lead_model().probability(x[test]))
    icp_auc = None
    if rules is not None:
        icp_auc = roc_auc(labels[test], np.asarray([score_icp(leads[i], rules).score for i in test], dtype=float))
    if current is not None:
        incumbent, incumbent_auc = current.version, roc_auc(labels[test], current.probability(x[test]))
    elif rules is not None and icp_auc is not None:
        incumbent, incumbent_auc = rules.version, icp_auc
    else:
        incumbent, incumbent_auc = lead_model().version, shipped_auc
    activate = auc > incumbent_auc and auc > shipped_auc
    metrics = {
        "holdout_auc": round(auc, 4), "shipped_holdout_auc": round(shipped_auc, 4),
        "icp_holdout_auc": None if icp_auc is None else round(icp_auc, 4),
        "incumbent": incumbent, "incumbent_holdout_auc": round(incumbent_auc, 4),
        "holdout_ece": round(calibration_error(labels[test], p), 4),
        "examples": len(leads), "holdout_examples": len(test),
        "conversion_rate": round(float(labels.mean()), 4), "seed": seed,
        "trees": model.metadata.get("trees"),
    }
    model.metadata.update(metrics)
    return _Fitted(model.to_json(), metrics, auc, shipped_auc, icp_auc, incumbent, incumbent_auc, activate)


async def org_icp_rules(conn: asyncpg.Connection, org_id: Any) -> IcpRules | None:
    """The organisation's configured ICP rules; None when unset or unreadable (logged)."""
    config = await conn.fetchval("SELECT settings->'icp' FROM organizations WHERE id = $1", org_id)
    if isinstance(config, str):  # a pool without the jsonb codec
        config = json.loads(config)
    if config is None:
        return None
    try:
        return icp_rules_of(config)
    except IcpConfigError as exc:
        log.warning("organisation %s: ignoring settings.icp (%s)", org_id, exc)
        return None


async def train_org_lead_model(conn: asyncpg.Connection, org_id: str, *, seed: int = 0,
                               trained_by: str | None = None) -> TrainingResult:
    rows = await conn.fetch(
        # The newest labelled leads, in id order: the seeded split depends on the rows only,
        # not on when they were last touched.
        f"SELECT * FROM (SELECT {LEAD_COLUMNS} FROM leads "
        f"WHERE org_id = $1 AND status IN ('converted', 'unqualified') "
        f"ORDER BY updated_at DESC, id LIMIT {MAX_EXAMPLES}) newest ORDER BY id",
        org_id,
    )
    labels = np.asarray([1 if r["status"] == "converted" else 0 for r in rows], dtype=int)
    check_counts(labels, "converted leads", "unqualified leads")
    engagement = await engagement_by_lead(conn, [r["id"] for r in rows], org_id=org_id)
    leads = [{**dict(r), "engagement": engagement[r["id"]]} for r in rows]
    current = await active_model(conn, org_id, "lead", FEATURES)
    rules = await org_icp_rules(conn, org_id)
    fitted = await asyncio.to_thread(_fit_and_compare, leads, labels, seed, str(org_id), current, rules)
    async with conn.transaction():
        version = await store_model(conn, org_id, "lead", family="gbm", format=TREES_FORMAT,
                                    model_json=fitted.model_json, metrics=fitted.metrics,
                                    activate=fitted.activate, trained_by=trained_by)
        if fitted.activate:
            await conn.execute("UPDATE leads SET scored_at = NULL WHERE org_id = $1 AND status <> 'converted'",
                               org_id)
    return TrainingResult(version, fitted.metrics["examples"], fitted.metrics["conversion_rate"], fitted.auc, fitted.shipped_auc,
                          fitted.activate, fitted.icp_auc, fitted.incumbent, fitted.incumbent_auc, fitted.metrics)


async def active_lead_model(conn: asyncpg.Connection, org_id: str) -> ScoringModel:
    """The organisation's active trained model, else the shipped one."""
    return await active_model(conn, org_id, "lead", FEATURES) or lead_model()
