"""Deal prediction: win probability, predicted close date, risk flags and reasons.

Win probability comes from a logistic regression trained by
``scripts/train_deal_prediction.py`` (weights in ``crm_core/data/deal_prediction.json``),
or from the organisation's own gradient-boosted model once it has enough closed
deals (``crm_core.scoring.deal_model_training``); closed deals short-circuit to 1 or 0. The close date and the risk flags are
transparent rules (typical days to close per stage, stretched by how long the
deal has sat in its stage), written here so a rep can check them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from crm_core.scoring.deal_features import (
    FEATURES,
    TYPICAL_DAYS_IN_STAGE,
    TYPICAL_DAYS_TO_CLOSE,
    DealInputError,
    DealProfile,
    profile_of,
    vector_of,
)
from crm_core.scoring.logistic_model import LogisticModel, load_packaged
from crm_core.scoring.model import ScoringModel

__all__ = ["DealInputError", "DealPrediction", "deal_model", "predict_deal", "prediction_row"]

MODEL_FILE = "deal_prediction.json"
STALE_AFTER_DAYS = 14
_MIN_EFFECT = 0.05

_GROUPS: dict[str, tuple[str, ...]] = {
    "stage": tuple(f for f in FEATURES if f.startswith("stage_")),
    "time_in_stage": ("days_in_stage_log", "stalled_ratio"),
    "value": ("value_log",),
    "recency": ("days_since_activity_log",),
    "activity": ("activities_30d_log",),
    "sentiment": ("sentiment_mean", "sentiment_trend"),
    "objections": ("objection_hits_log",),
    "competitors": ("competitor_hits_log",),
    "budget": ("budget_discussed",),
}
_GROUP_INDEX = {g: [FEATURES.index(f) for f in names] for g, names in _GROUPS.items()}


@dataclass(frozen=True, slots=True)
class DealPrediction:
    probability: float  # 0-1 chance of winning
    predicted_close: date | None  # None for a deal already closed without a close date
    risk_flags: list[str]  # machine-readable: stalled_in_stage, no_recent_activity, ...
    reasons: list[str]  # strongest factors in words, positives first
    model_version: str
    deal_id: str | None = None
    org_id: str | None = None
    factors: tuple[dict[str, Any], ...] = ()


@lru_cache(maxsize=1)
def deal_model() -> LogisticModel:
    return load_packaged(MODEL_FILE, FEATURES)


def predict_deal(
    deal: dict[str, Any],
    activities: list[dict[str, Any]],
    *,
    now: datetime | None = None,
    model: ScoringModel | None = None,
) -> DealPrediction:
    """Predict one deal from its row (dict) and its timeline (see ``crm_core.scoring.deal_features``).

    Raises ``DealInputError`` for values that cannot be read.
    """
    model = model or deal_model()
    now = now or datetime.now(timezone.utc)
    profile = profile_of(deal, activities, now)
    ids = {"deal_id": _id(deal.get("id")), "org_id": _id(deal.get("org_id"))}
    if profile.stage in ("closed_won", "closed_lost"):
        won = profile.stage == "closed_won"
        closed = deal.get("closed_at")
        closed_on = closed.date() if isinstance(closed, datetime) else profile.expected_close
        return DealPrediction(
            probability=1.0 if won else 0.0, predicted_close=closed_on, risk_flags=[],
            reasons=["Deal is closed (won)" if won else "Deal is closed (lost)"],
            model_version=model.version, **ids,
        )
    x = vector_of(profile)
    probability = float(model.probability(x)[0])
    effects = model.group_effects(x, _GROUP_INDEX)
    ranked = sorted(effects.items(), key=lambda kv: kv[1], reverse=True)
    texts = {g: _describe(g, profile) for g in effects}
    # The absence of a bad sign helps a little but is not a reason a rep needs to read.
    positives = [texts[g] for g, e in ranked
                 if e >= _MIN_EFFECT and not texts[g].startswith("No ")][:3]
    negatives = [f"Held back by: {texts[g][0].lower()}{texts[g][1:]}"
                 for g, e in reversed(ranked) if e <= -_MIN_EFFECT][:3]
    return DealPrediction(
        probability=round(probability, 4),
        predicted_close=_predicted_close(profile, now),
        risk_flags=_risk_flags(profile, now),
        reasons=positives + negatives,
        model_version=model.version,
        factors=tuple({"factor": g, "effect": round(e, 3), "text": texts[g]} for g, e in ranked),
        **ids,
    )


def prediction_row(pred: DealPrediction) -> dict[str, Any]:
    """The ``predictions`` table's columns (org_id, deal_id, model_version, win_probability,
    predicted_close, factors).

    ``factors`` is a JSON array (the column's default is ``[]``): one
    ``{"factor", "effect", "text"}`` entry per model factor, strongest first,
    then one ``{"risk_flag": name}`` entry per risk flag.
    """
    if pred.deal_id is None or pred.org_id is None:
        raise DealInputError("the deal had no id / org_id: the prediction cannot be stored")
    factors: list[dict[str, Any]] = [dict(f) for f in pred.factors]
    factors += [{"risk_flag": flag} for flag in pred.risk_flags]
    return {
        "org_id": pred.org_id,
        "deal_id": pred.deal_id,
        "model_version": pred.model_version,
        "win_probability": float(pred.probability),
        "predicted_close": pred.predicted_close,
        "factors": factors,
    }


def _predicted_close(p: DealProfile, now: datetime) -> date:
    typical_stage = TYPICAL_DAYS_IN_STAGE[p.stage]
    remaining = TYPICAL_DAYS_TO_CLOSE[p.stage] - min(p.days_in_stage, typical_stage)
    # A deal that has sat past its stage's norm is moving slower than typical.
    slowdown = max(1.0, p.days_in_stage / typical_stage)
    if p.days_since_activity > STALE_AFTER_DAYS:
        slowdown *= 1.3
    return (now + timedelta(days=max(1.0, remaining * slowdown))).date()


def _risk_flags(p: DealProfile, now: datetime) -> list[str]:
    flags = []
    if p.days_in_stage > 2 * TYPICAL_DAYS_IN_STAGE[p.stage]:
        flags.append("stalled_in_stage")
    if p.days_since_activity > STALE_AFTER_DAYS:
        flags.append("no_recent_activity")
    if p.sentiment_trend < -0.2 or (p.call_sentiments and p.sentiment_mean < -0.2):
        flags.append("negative_sentiment")
    if p.competitor_hits:
        flags.append("competitor_mentioned")
    if p.objection_hits >= 2:
        flags.append("objections_raised")
    if p.expected_close is not None and p.expected_close < now.date():
        flags.append("past_expected_close")
    return flags


def _describe(group: str, p: DealProfile) -> str:
    if group == "stage":
        return f"Stage: {p.stage_raw}"
    if group == "time_in_stage":
        return f"{p.days_in_stage:.0f} days in {p.stage} (typical {TYPICAL_DAYS_IN_STAGE[p.stage]})"
    if group == "value":
        return f"Deal value {p.value:,.0f}"
    if group == "recency":
        days = round(p.days_since_activity)
        return "Activity today" if days == 0 else f"Last activity {days} day{'s' if days != 1 else ''} ago"
    if group == "activity":
        return f"{p.activities_30d} activities in the last 30 days"
    if group == "sentiment":
        if not p.call_sentiments:
            return "No call sentiment yet"
        trend = ("improving" if p.sentiment_trend > 0.1 else
                 "declining" if p.sentiment_trend < -0.1 else "steady")
        return f"Call sentiment {p.sentiment_mean:+.2f}, {trend}"
    if group == "objections":
        return f"{p.objection_hits} objections heard" if p.objection_hits else "No objections heard"
    if group == "competitors":
        return (f"Competitor mentioned {p.competitor_hits} times" if p.competitor_hits
                else "No competitor mentioned")
    if group == "budget":
        return "Budget discussed" if p.budget_hits else "Budget not yet discussed"
    raise KeyError(group)


def _id(value: Any) -> str | None:
    return None if value is None else str(value)
