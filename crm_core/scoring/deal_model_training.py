"""Retraining deal win probability on one organisation's closed deals, on demand.

Labels: a deal in a won stage = 1, in a lost stage = 0, by the stage's type (never its name);
training needs ``MIN_PER_CLASS`` of each. A closed deal is read as it looked
on its last open moment (``closing_snapshot``): its stage is the one it left
when it closed (the closing stage change's ``from``, else the last open stage
it entered, else qualification), the clock stops at ``closed_at``, and only
its timeline before that counts. So the features are the ones
``predict_deal`` computes for an open deal, and the label is what happened.
A deal's last days differ from an arbitrary moment of its life (the
activity right before a signature, say), which is a known bias of learning
from closing snapshots; the held-out comparison below is the guard.

The learner, split and rule are lead training's (``crm_core.scoring.lead_model_training``):
a gradient-boosted model fitted on a seeded 75 %, compared on the other 25 %
with the shipped deal model and the organisation's current trained one, and
stored as a new version that becomes active only when its held-out AUC beats
both. Its held-out calibration (expected calibration error) is stored with
the metrics. The close date and the risk flags stay rules
(``crm_core.scoring.deal_prediction``); only the win probability is learned.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from crm_core.scoring.boosted_training import calibration_error, fit_boosted
from crm_core.scoring.boosted_trees import FORMAT as TREES_FORMAT
from crm_core.scoring.deal_features import (
    FEATURES,
    STAGE_CHANGE_KINDS,
    STEP_PROBABILITY,
    as_datetime,
    profile_of,
    stage_of,
    vector_of,
)
from crm_core.scoring.deal_inputs import active_deal_model, deal_timelines
from crm_core.scoring.deal_prediction import deal_model
from crm_core.scoring.lead_model_training import (
    MAX_EXAMPLES,
    MIN_PER_CLASS,
    TrainingRefused,
    TrainingResult,
    check_counts,
    split,
)
from crm_core.scoring.logistic_model import roc_auc
from crm_core.scoring.org_models import active_model, store_model
from crm_core.scoring.model import ScoringModel

__all__ = ["MIN_PER_CLASS", "TrainingRefused", "active_deal_model", "closing_snapshot", "train_org_deal_model"]

log = logging.getLogger(__name__)

# A pipeline's stages by name: (type, win probability).
Stages = dict[str, tuple[str, float]]


@dataclass(frozen=True, slots=True)
class ClosingSnapshot:
    deal: dict[str, Any]  # the row with its last open stage
    activities: list[dict[str, Any]]  # the timeline before it closed
    as_of: datetime
    won: bool


def _target(activity: dict[str, Any]) -> str | None:
    body = activity.get("body") or {}
    target = body.get("to") or body.get("to_stage") or body.get("stage")
    return target if isinstance(target, str) and target.strip() else None


def closing_snapshot(deal: dict[str, Any], activities: list[dict[str, Any]],
                     stages: Stages | None = None) -> ClosingSnapshot:
    """A closed deal as it looked when it closed (see the module docstring); ``DealInputError``
    for values that cannot be read.

    ``stages``: the deal's pipeline's stages, as the database holds them (the deal row then
    carries ``stage_type``); the stage changes' names are read through them, by type. Without
    them (a deal given as plain data) the names are read by ``stage_of``."""
    def type_of(name: str | None) -> str | None:
        if name is None:
            return None
        if stages is not None:
            found = stages.get(name)
            return found[0] if found else None
        step = stage_of(name)
        return {"closed_won": "won", "closed_lost": "lost"}.get(step, "open")

    won = deal["stage_type"] == "won" if stages is not None else type_of(deal["stage"]) == "won"
    changes = sorted((a for a in activities if a.get("kind") in STAGE_CHANGE_KINDS and _target(a)),
                     key=lambda a: as_datetime(a["occurred_at"], "occurred_at"))
    closing = next((a for a in reversed(changes) if type_of(_target(a)) in ("won", "lost")), None)
    as_of = as_datetime(deal.get("closed_at") or deal.get("updated_at"), "closed_at")
    if closing is not None:
        at = as_datetime(closing["occurred_at"], "occurred_at")
        as_of = at if as_of is None else min(as_of, at)
    if as_of is None:
        raise ValueError("a closed deal needs closed_at or updated_at")
    prior = None
    if closing is not None:
        source = (closing.get("body") or {}).get("from")
        if isinstance(source, str) and source.strip() and type_of(source) == "open":
            prior = source
    if prior is None:
        earlier = [a for a in changes if as_datetime(a["occurred_at"], "occurred_at") <= as_of
                   and type_of(_target(a)) == "open"]
        prior = _target(earlier[-1]) if earlier else None
    before = [a for a in activities if a is not closing
              and as_datetime(a.get("occurred_at"), "occurred_at") is not None
              and as_datetime(a["occurred_at"], "occurred_at") < as_of]
    snapshot = {**deal, "stage": prior or "qualification", "expected_close": None}
    if stages is not None:
        # the last open stage's type and probability; none known (or deleted since): the earliest step
        snapshot["stage_type"] = "open"
        snapshot["stage_probability"] = (stages[prior][1] if prior in stages
                                         else min(STEP_PROBABILITY.values()))
        entries = [a["occurred_at"] for a in changes if _target(a) == prior
                   and as_datetime(a["occurred_at"], "occurred_at") <= as_of]
        snapshot["stage_entered_at"] = entries[-1] if entries else deal.get("created_at")
    return ClosingSnapshot(snapshot, before, as_of, won)


@dataclass(frozen=True, slots=True)
class _Fitted:
    model_json: dict[str, Any]
    metrics: dict[str, Any]
    activate: bool


def _fit_and_compare(x: np.ndarray, labels: np.ndarray, seed: int, org_id: str,
                     current: ScoringModel | None) -> _Fitted:
    train, test = split(labels, seed)
    model = fit_boosted(x[train], labels[train], FEATURES, version="pending", seed=seed, metadata={
        "data": f"organisation {org_id}: {len(labels)} closed deals (won/lost), read as they closed",
    })
    p = model.probability(x[test])
    auc = roc_auc(labels[test], p)
    shipped_auc = roc_auc(labels[test], deal_model().probability(x[test]))
    if current is not None:
        incumbent, incumbent_auc = current.version, roc_auc(labels[test], current.probability(x[test]))
    else:
        incumbent, incumbent_auc = deal_model().version, shipped_auc
    activate = auc > incumbent_auc and auc > shipped_auc
    metrics = {
        "holdout_auc": round(auc, 4), "shipped_holdout_auc": round(shipped_auc, 4),
        "incumbent": incumbent, "incumbent_holdout_auc": round(incumbent_auc, 4),
        "holdout_ece": round(calibration_error(labels[test], p), 4),
        "shipped_holdout_ece": round(calibration_error(labels[test], deal_model().probability(x[test])), 4),
        "examples": len(labels), "holdout_examples": len(test),
        "win_rate": round(float(labels.mean()), 4), "seed": seed, "trees": model.metadata.get("trees"),
    }
    model.metadata.update(metrics)
    return _Fitted(model.to_json(), metrics, activate)


def _readable(rows: list[dict[str, Any]], timelines: dict[Any, list[dict[str, Any]]],
              stages: dict[Any, Stages]) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows and labels of the deals that can be read; the others are logged and skipped."""
    vectors, labels = [], []
    for row in rows:
        try:
            snap = closing_snapshot(row, timelines.get(row["id"], []), stages.get(row["pipeline_id"], {}))
            vectors.append(vector_of(profile_of(snap.deal, snap.activities, snap.as_of)))
        except ValueError as exc:  # DealInputError included
            log.warning("deal %s left out of training: %s", row["id"], exc)
            continue
        labels.append(1 if snap.won else 0)
    if not vectors:
        return np.zeros((0, len(FEATURES))), np.zeros(0, dtype=int)
    return np.vstack(vectors), np.asarray(labels, dtype=int)


async def train_org_deal_model(conn: asyncpg.Connection, org_id: str, *, seed: int = 0,
                               trained_by: str | None = None) -> TrainingResult:
    rows = await conn.fetch(
        # The newest closed deals (in a won or lost stage), in id order (the seeded split depends
        # on the rows only).
        "SELECT * FROM (SELECT d.*, s.type AS stage_type, s.probability AS stage_probability FROM deals d "
        "JOIN pipeline_stages s ON s.org_id = d.org_id AND s.id = d.stage_id "
        "WHERE d.org_id = $1 AND s.type IN ('won', 'lost') "
        f"ORDER BY coalesce(d.closed_at, d.updated_at) DESC, d.id LIMIT {MAX_EXAMPLES}) newest ORDER BY id",
        org_id,
    )
    check_counts(np.asarray([1 if r["stage_type"] == "won" else 0 for r in rows], dtype=int),
                 "won deals", "lost deals")
    timelines = await deal_timelines(conn, org_id, [r["id"] for r in rows])
    stages: dict[Any, Stages] = {}
    for s in await conn.fetch("SELECT pipeline_id, name, type, probability FROM pipeline_stages WHERE org_id = $1",
                              org_id):
        stages.setdefault(s["pipeline_id"], {})[s["name"]] = (s["type"], float(s["probability"]))
    x, labels = await asyncio.to_thread(_readable, [dict(r) for r in rows], timelines, stages)
    check_counts(labels, "readable won deals", "readable lost deals")
    current = await active_model(conn, org_id, "deal", FEATURES)
    fitted = await asyncio.to_thread(_fit_and_compare, x, labels, seed, str(org_id), current)
    async with conn.transaction():
        version = await store_model(conn, org_id, "deal", family="gbm", format=TREES_FORMAT,
                                    model_json=fitted.model_json, metrics=fitted.metrics,
                                    activate=fitted.activate, trained_by=trained_by)
    m = fitted.metrics
    return TrainingResult(version, len(labels), m["win_rate"], m["holdout_auc"], m["shipped_holdout_auc"],
                          fitted.activate, None, m["incumbent"], m["incumbent_holdout_auc"], m)

