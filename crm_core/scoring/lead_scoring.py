"""AI lead scoring: a 0-100 score, a grade A-F and the reasons behind them.

The shipped model is a logistic regression trained by ``scripts/train_lead_scoring.py``
(weights in ``crm_core/data/lead_scoring.json``); an organisation with enough
history of its own scores with its gradient-boosted model instead
(``crm_core.scoring.lead_model_training``, ``crm_core.scoring.boosted_trees``). The score is the
model's conversion probability in percent. Reasons come from the model itself:
the features are grouped into facts a rep recognises (title, company size,
industry, source, email, calls, sentiment, buying signals, objections), each
group's effect on the log-odds is measured (the logistic model: its summed
contributions; trees: occlusion against training rows), and the strongest ones
are written out in words, positives first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from crm_core.scoring.lead_features import (
    FEATURES,
    INDUSTRY_LABELS,
    SENIORITY_LABELS,
    SOURCE_LABELS,
    LeadInputError,
    LeadProfile,
    profile_of,
    vector_of,
)
from crm_core.scoring.logistic_model import LogisticModel, load_packaged
from crm_core.scoring.model import ScoringModel

__all__ = ["LeadInputError", "LeadScore", "grade_for", "lead_model", "lead_score_columns", "score_lead"]

MODEL_FILE = "lead_scoring.json"
# Grade cut-offs on the score (conversion probability in percent): A >= 60, B >= 35, C >= 15,
# D >= 8, E >= 3, F below 3. A-C kept the meaning they had when grades stopped at D; the old
# D band (< 15 %) is split so a rep can tell "worth a nurture email" (D) from "almost certainly
# not buying" (F). Changing a cut-off changes stored grades only when leads are re-scored.
GRADE_CUTOFFS = (("A", 60), ("B", 35), ("C", 15), ("D", 8), ("E", 3))
LOWEST_GRADE = "F"
GRADES = (*(grade for grade, _ in GRADE_CUTOFFS), LOWEST_GRADE)
_MIN_EFFECT = 0.05  # log-odds; smaller contributions are noise, not reasons
_MAX_POSITIVE, _MAX_NEGATIVE = 3, 2
_NO_OBJECTIONS = "No objections raised"

_GROUPS: dict[str, tuple[str, ...]] = {
    "title": tuple(f for f in FEATURES if f.startswith("seniority_")),
    "company_size": ("company_size_log", "company_size_log_sq", "company_size_unknown"),
    "industry": tuple(f for f in FEATURES if f.startswith("industry_")),
    "source": tuple(f for f in FEATURES if f.startswith("source_")),
    "email": ("email_free", "email_missing"),
    "calls": ("calls_log", "talk_minutes_log"),
    "sentiment": ("sentiment",),
    "buying_signals": ("keyword_hits_log",),
    "objections": ("objection_hits_log",),
}
_GROUP_INDEX = {g: [FEATURES.index(f) for f in names] for g, names in _GROUPS.items()}


@dataclass(frozen=True, slots=True)
class ScoreFactor:
    factor: str  # group name, e.g. "source"
    effect: float  # contribution to the log-odds; > 0 raises the score
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"factor": self.factor, "effect": round(self.effect, 3), "text": self.text}


@dataclass(frozen=True, slots=True)
class LeadScore:
    score: int  # 0-100
    grade: str  # A | B | C | D | E | F
    reasons: list[str]  # strongest factors in words, positives first
    model_version: str
    factors: list[ScoreFactor]  # every factor with its effect (for score_factors)
    probability: float


@lru_cache(maxsize=1)
def lead_model() -> LogisticModel:
    return load_packaged(MODEL_FILE, FEATURES)


def grade_for(score: int) -> str:
    for grade, cutoff in GRADE_CUTOFFS:
        if score >= cutoff:
            return grade
    return LOWEST_GRADE


def score_lead(lead: dict[str, Any], model: ScoringModel | None = None) -> LeadScore:
    """Score one lead (a leads row as a dict, optionally with an ``engagement`` object).

    Raises ``LeadInputError`` for values that cannot be read (negative counts,
    non-numeric sizes); missing fields are fine and count as unknown.
    """
    model = model or lead_model()
    profile = profile_of(lead)
    x = vector_of(profile)
    probability = float(model.probability(x)[0])
    score = int(round(probability * 100))
    effects = model.group_effects(x, _GROUP_INDEX)
    factors = [ScoreFactor(group, effect, _describe(group, profile)) for group, effect in effects.items()]
    factors.sort(key=lambda f: f.effect, reverse=True)
    return LeadScore(
        score=score,
        grade=grade_for(score),
        reasons=_reasons(factors),
        model_version=model.version,
        factors=factors,
        probability=probability,
    )


def lead_score_columns(result: LeadScore, scored_at: datetime | None = None) -> dict[str, Any]:
    """The leads-table columns a score fills (ai_score, grade, score_factors, scored_at)."""
    return {
        "ai_score": float(result.score),
        "grade": result.grade,
        "score_factors": {
            "model_version": result.model_version,
            "reasons": result.reasons,
            "factors": [f.to_json() for f in result.factors],
        },
        "scored_at": scored_at or datetime.now(timezone.utc),
    }


def _reasons(factors: list[ScoreFactor]) -> list[str]:
    # "No objections" helps a little, but it is not why a lead is an A.
    positives = [f.text for f in factors
                 if f.effect >= _MIN_EFFECT and f.text != _NO_OBJECTIONS][:_MAX_POSITIVE]
    negatives = [f"Held back by: {f.text[0].lower()}{f.text[1:]}"
                 for f in sorted(factors, key=lambda f: f.effect) if f.effect <= -_MIN_EFFECT]
    return positives + negatives[:_MAX_NEGATIVE]


def _describe(group: str, p: LeadProfile) -> str:
    e = p.engagement
    if group == "title":
        label = SENIORITY_LABELS[p.seniority]
        return f"{label} ({p.title})" if p.title else "No job title on record"
    if group == "company_size":
        if p.company_size is None:
            return "Company size unknown"
        return f"Company of {p.company_size:,} employees"
    if group == "industry":
        return f"Industry: {INDUSTRY_LABELS[p.industry]}"
    if group == "source":
        return f"Lead source: {SOURCE_LABELS[p.source]}"
    if group == "email":
        if p.email_kind == "missing":
            return "No email address"
        kind = "Free" if p.email_kind == "free" else "Corporate"
        return f"{kind} email domain ({p.email_domain})"
    if group == "calls":
        if e.calls == 0:
            return "No calls yet"
        minutes = e.talk_time_s / 60
        return f"{e.calls} call{'s' if e.calls != 1 else ''}, {minutes:.0f} min talk time"
    if group == "sentiment":
        if e.avg_sentiment is None:
            return "No call sentiment yet"
        mood = "Positive" if e.avg_sentiment > 0.1 else "Negative" if e.avg_sentiment < -0.1 else "Neutral"
        return f"{mood} sentiment on calls ({e.avg_sentiment:+.2f})"
    if group == "buying_signals":
        n = e.keyword_hits
        return f"{n} buying-signal phrase{'s' if n != 1 else ''} on calls" if n else "No buying signals heard"
    if group == "objections":
        n = e.objection_hits
        return f"{n} objection{'s' if n != 1 else ''} raised on calls" if n else _NO_OBJECTIONS
    raise KeyError(group)
