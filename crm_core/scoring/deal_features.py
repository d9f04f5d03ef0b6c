"""Turning a deal and its activity timeline into the numbers the deal model reads.

The activity list is the deal's timeline (``activities`` rows as dicts:
``kind``, ``occurred_at``, ``body``). What is read from it:

* calls: ``kind`` in ``call``, ``call.completed``, ``call.ended``; ``body.sentiment``
  (customer sentiment in [-1, 1]) and optional ``body.objection_hits``,
  ``body.competitor_hits``, ``body.budget_hits`` counts from the call;
* call signals: ``kind`` in ``call_signal``, ``deal_signal`` with ``body.signal`` one of
  ``objection`` | ``competitor`` | ``budget`` (and optional ``body.count``);
* stage changes: ``kind`` in ``stage_change``, ``stage_changed`` (the API's) with ``body.to`` (or ``to_stage``): when
  the deal carries no ``stage_entered_at``, the latest one into the current stage says when the deal
  entered it (else ``deal["created_at"]``).

The stage: a deal read from the database carries its stage's ``stage_type`` (open | won | lost) and
``stage_probability`` (``deal_inputs``); the type says whether it is closed and an open stage reads as
the step of the default pipeline whose probability is nearest its own (``step_of``), whatever the
stage is called. A deal given as plain data without them is read by its stage name (``stage_of``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np


class DealInputError(ValueError):
    """A deal or activity field holds a value that cannot be read."""


OPEN_STAGES = ("qualification", "discovery", "demo", "proposal", "negotiation")
WON_STAGES = frozenset({"closed_won", "won", "closed-won"})
LOST_STAGES = frozenset({"closed_lost", "lost", "closed-lost"})
_STAGE_ALIASES = {"qualified": "qualification", "lead": "qualification", "new": "qualification",
                  "meeting": "discovery", "needs_analysis": "discovery", "presentation": "demo",
                  "quote": "proposal", "proposal_sent": "proposal", "contract": "negotiation",
                  "commit": "negotiation"}
# The default pipeline's open stages and their win probabilities (migration 0021 seeds them).
STEP_PROBABILITY = {"qualification": 0.1, "discovery": 0.2, "demo": 0.4, "proposal": 0.6, "negotiation": 0.8}
# Median days a deal spends in each stage, and days from entering it to close.
TYPICAL_DAYS_IN_STAGE = {"qualification": 14, "discovery": 14, "demo": 10, "proposal": 14,
                         "negotiation": 10}
TYPICAL_DAYS_TO_CLOSE = {"qualification": 75, "discovery": 60, "demo": 45, "proposal": 30,
                         "negotiation": 15}
CALL_KINDS = frozenset({"call", "call.completed", "call.ended"})
SIGNAL_KINDS = frozenset({"call_signal", "deal_signal"})
STAGE_CHANGE_KINDS = frozenset({"stage_change", "stage_changed"})  # the API writes stage_changed

FEATURES: tuple[str, ...] = (
    *(f"stage_{s}" for s in OPEN_STAGES[1:]),  # baseline: qualification
    "days_in_stage_log",
    "stalled_ratio",
    "value_log",
    "days_since_activity_log",
    "activities_30d_log",
    "sentiment_mean",
    "sentiment_trend",
    "objection_hits_log",
    "competitor_hits_log",
    "budget_discussed",
)


@dataclass(frozen=True, slots=True)
class DealProfile:
    stage: str  # one of OPEN_STAGES, or closed_won / closed_lost
    stage_raw: str
    days_in_stage: float
    value: float
    days_since_activity: float
    activities_30d: int
    call_sentiments: tuple[float, ...]  # oldest first
    objection_hits: int
    competitor_hits: int
    budget_hits: int
    expected_close: date | None

    @property
    def sentiment_mean(self) -> float:
        return float(np.mean(self.call_sentiments)) if self.call_sentiments else 0.0

    @property
    def sentiment_trend(self) -> float:
        """Later calls' mean sentiment minus earlier calls' (0 with fewer than two calls)."""
        s = self.call_sentiments
        if len(s) < 2:
            return 0.0
        half = len(s) // 2
        return float(np.mean(s[len(s) - half:]) - np.mean(s[:half]))

    @property
    def stalled_ratio(self) -> float:
        typical = TYPICAL_DAYS_IN_STAGE.get(self.stage)
        return min(self.days_in_stage / typical, 5.0) if typical else 0.0


def stage_of(stage: Any) -> str:
    if not isinstance(stage, str) or not stage.strip():
        raise DealInputError(f"stage must be non-empty text, got {stage!r}")
    key = stage.strip().lower().replace(" ", "_")
    if key in WON_STAGES:
        return "closed_won"
    if key in LOST_STAGES:
        return "closed_lost"
    key = _STAGE_ALIASES.get(key, key)
    # A custom stage we do not know reads as the earliest one: the cautious guess.
    return key if key in OPEN_STAGES else "qualification"


def step_of(stage_type: Any, probability: Any) -> str:
    """The model's step for a pipeline stage, from its type and win probability (never its name):
    won and lost stages are closed; an open stage is the default step whose probability is
    nearest (the earlier one on a tie: the cautious guess)."""
    if stage_type == "won":
        return "closed_won"
    if stage_type == "lost":
        return "closed_lost"
    if stage_type != "open":
        raise DealInputError(f"stage_type must be open, won or lost, got {stage_type!r}")
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) \
            or not math.isfinite(probability) or not 0 <= probability <= 1:
        raise DealInputError(f"stage_probability must be a number in [0, 1], got {probability!r}")
    return min(OPEN_STAGES, key=lambda s: (round(abs(STEP_PROBABILITY[s] - probability), 9), OPEN_STAGES.index(s)))


def as_datetime(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise DealInputError(f"{field} is not an ISO date-time: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    raise DealInputError(f"{field} must be a date-time, got {type(value).__name__}")


def _count(body: dict, key: str) -> int:
    value = body.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
        raise DealInputError(f"activity body.{key} must be a non-negative number, got {value!r}")
    return int(value)


def _value_of(deal: dict) -> float:
    raw = deal.get("value", 0)
    try:
        value = float(Decimal(str(raw))) if raw is not None else 0.0
    except (InvalidOperation, ValueError):
        raise DealInputError(f"value must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise DealInputError(f"value must be a non-negative number, got {raw!r}")
    return value


def profile_of(deal: dict[str, Any], activities: list[dict[str, Any]], now: datetime) -> DealProfile:
    if not isinstance(deal, dict):
        raise DealInputError(f"a deal must be an object, got {type(deal).__name__}")
    if not isinstance(activities, list):
        raise DealInputError("activities must be a list")
    if "stage_type" in deal:
        stage = step_of(deal["stage_type"], deal.get("stage_probability"))
    else:
        stage = stage_of(deal.get("stage", "qualification"))
    created = as_datetime(deal.get("created_at"), "created_at") or now
    entered = as_datetime(deal.get("stage_entered_at"), "stage_entered_at")
    known_entry = entered is not None
    timeline: list[tuple[datetime, dict]] = []
    for i, activity in enumerate(activities):
        if not isinstance(activity, dict):
            raise DealInputError(f"activities[{i}] must be an object")
        at = as_datetime(activity.get("occurred_at"), f"activities[{i}].occurred_at")
        if at is None:
            raise DealInputError(f"activities[{i}].occurred_at is missing")
        body = activity.get("body") or {}
        if not isinstance(body, dict):
            raise DealInputError(f"activities[{i}].body must be an object")
        timeline.append((at, {"kind": str(activity.get("kind", "")), "body": body}))
    timeline.sort(key=lambda item: item[0])

    sentiments: list[float] = []
    objections = competitors = budget = 0
    for at, item in timeline:
        kind, body = item["kind"], item["body"]
        target = body.get("to") or body.get("to_stage") or body.get("stage")
        if kind in STAGE_CHANGE_KINDS and not known_entry and isinstance(target, str) and target.strip() \
                and stage_of(target) == stage:
            entered = at
        elif kind in CALL_KINDS:
            s = body.get("sentiment")
            if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s):
                sentiments.append(max(-1.0, min(1.0, float(s))))
            objections += _count(body, "objection_hits")
            competitors += _count(body, "competitor_hits")
            budget += _count(body, "budget_hits")
        elif kind in SIGNAL_KINDS:
            n = _count(body, "count") if "count" in body else 1
            signal = body.get("signal")
            objections += n if signal == "objection" else 0
            competitors += n if signal == "competitor" else 0
            budget += n if signal == "budget" else 0
    entered = entered or created
    last_activity = timeline[-1][0] if timeline else created
    day = 86400.0
    expected = deal.get("expected_close")
    expected_date = as_datetime(expected, "expected_close").date() if expected is not None else None
    return DealProfile(
        stage=stage,
        stage_raw=str(deal.get("stage", "qualification")),
        days_in_stage=max(0.0, (now - entered).total_seconds() / day),
        value=_value_of(deal),
        days_since_activity=max(0.0, (now - last_activity).total_seconds() / day),
        activities_30d=sum(1 for at, _ in timeline if 0 <= (now - at).total_seconds() <= 30 * day),
        call_sentiments=tuple(sentiments),
        objection_hits=objections,
        competitor_hits=competitors,
        budget_hits=budget,
        expected_close=expected_date,
    )


def vector_of(p: DealProfile) -> np.ndarray:
    values: list[float] = [1.0 if p.stage == s else 0.0 for s in OPEN_STAGES[1:]]
    values += [
        math.log1p(p.days_in_stage),
        p.stalled_ratio,
        math.log10(p.value + 1),
        math.log1p(p.days_since_activity),
        math.log1p(p.activities_30d),
        p.sentiment_mean,
        p.sentiment_trend,
        math.log1p(p.objection_hits),
        math.log1p(p.competitor_hits),
        1.0 if p.budget_hits else 0.0,
    ]
    return np.asarray(values, dtype=np.float64)
