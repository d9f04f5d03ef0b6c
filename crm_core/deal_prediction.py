"""Deal win prediction — BASELINE, used until crm-intel's model lands on main.

``predict_deal(deal, activities) -> DealPrediction`` is the agreed
interface: the deal as a plain dict (``deals`` row), its activities (dicts,
newest first), a win probability 0–1, an expected close date, reasons and a
model version. This baseline is a transparent stage-based heuristic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

MODEL_VERSION = "baseline-stage-1"

_STAGE_PROBABILITY = {
    "qualification": 0.15, "discovery": 0.25, "demo": 0.35, "proposal": 0.5,
    "negotiation": 0.7, "closed_won": 1.0, "closed_lost": 0.0,
}


@dataclass(frozen=True, slots=True)
class DealPrediction:
    probability: float
    expected_close: date | None
    reasons: list[str] = field(default_factory=list)
    model_version: str = MODEL_VERSION


def predict_deal(deal: dict[str, Any], activities: list[dict[str, Any]]) -> DealPrediction:
    stage = deal.get("stage") or "qualification"
    p = _STAGE_PROBABILITY.get(stage, 0.2)
    reasons = [f"stage '{stage}' wins {round(p * 100)}% of the time by default"]
    if stage in ("closed_won", "closed_lost"):
        return DealPrediction(p, deal.get("expected_close"), reasons)
    now = datetime.now(timezone.utc)
    recent = [a for a in activities if (now - a["occurred_at"]).days <= 14]
    if len(recent) >= 3:
        p += 0.1
        reasons.append(f"{len(recent)} activities in the last two weeks")
    elif not recent:
        p -= 0.1
        reasons.append("no activity in the last two weeks")
    p = max(0.01, min(0.99, p))
    expected = deal.get("expected_close") or (now.date() + timedelta(days=int(90 * (1 - p)) + 7))
    return DealPrediction(round(p, 3), expected, reasons)
