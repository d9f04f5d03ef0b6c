"""A rule-based ideal-customer-profile (ICP) lead score that an organisation configures.

For organisations with too little labelled history to train a model of their
own (``crm_core.scoring.lead_model_training`` needs ``MIN_PER_CLASS`` converted and
lost leads), an admin can describe their ideal customer in
``organizations.settings.icp``; the score is then the sum of the points of the
rules a lead meets, clamped to 0-100, and every point is explained. Once the
organisation's own trained model is active, that model is used instead.

``settings.icp`` (every key optional; points are numbers in -100..100)::

    {
      "base": 10,
      "seniority": {"c_level": 30, "vp": 25, "director": 15, "manager": 5, "individual": 0},
      "industries": {"software": 25, "financial_services": 15, "other": -5},
      "company_size": [{"min": 50, "max": 1000, "points": 20}, {"min": 1001, "points": 10}],
      "sources": {"referral": 15, "inbound_demo": 15, "purchased_list": -10},
      "email": {"corporate": 10, "free": -5, "missing": -10},
      "engagement": {"per_call": 5, "max_call_points": 15, "per_buying_signal": 5,
                     "per_objection": -5, "positive_sentiment": 10}
    }

Seniority, industry and source keys are the families ``crm_core.scoring.lead_features``
reads leads into (``SENIORITY_LEVELS`` + ``individual``, ``INDUSTRIES`` +
``other``, ``SOURCES`` + ``other``), so "VP of Sales" and "vp, revenue" both
count as ``vp``. A lead meets the first company-size band that contains it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from crm_core.scoring.lead_features import INDUSTRIES, SENIORITY_LEVELS, SOURCES, LeadProfile, profile_of
from crm_core.scoring.lead_scoring import LeadScore, ScoreFactor, grade_for

_MAX_POSITIVE, _MAX_NEGATIVE = 3, 2
_ENGAGEMENT_KEYS = ("per_call", "max_call_points", "per_buying_signal", "per_objection", "positive_sentiment")
_FAMILIES = {
    "seniority": frozenset((*SENIORITY_LEVELS, "individual")),
    "industries": frozenset((*INDUSTRIES, "other")),
    "sources": frozenset((*SOURCES, "other")),
    "email": frozenset(("corporate", "free", "missing")),
}


class IcpConfigError(ValueError):
    """``settings.icp`` cannot be read; the message names the key."""


@dataclass(frozen=True, slots=True)
class SizeBand:
    min: int
    max: int | None
    points: float


@dataclass(frozen=True, slots=True)
class IcpRules:
    version: str  # "icp-rules-<hash of the config>": stored with each score, so changes are traceable
    base: float
    seniority: dict[str, float]
    industries: dict[str, float]
    company_size: tuple[SizeBand, ...]
    sources: dict[str, float]
    email: dict[str, float]
    engagement: dict[str, float]


def _points(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -100 <= value <= 100:
        raise IcpConfigError(f"icp.{where} must be a number of points in -100..100, got {value!r}")
    return float(value)


def _table(config: dict[str, Any], key: str) -> dict[str, float]:
    raw = config.get(key, {})
    if not isinstance(raw, dict):
        raise IcpConfigError(f"icp.{key} must be an object of name: points")
    allowed = _FAMILIES[key]
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise IcpConfigError(f"icp.{key} has unknown names {unknown}; use {sorted(allowed)}")
    return {name: _points(v, f"{key}.{name}") for name, v in raw.items()}


def _bands(raw: Any) -> tuple[SizeBand, ...]:
    if not isinstance(raw, list) or len(raw) > 20:
        raise IcpConfigError("icp.company_size must be a list of at most 20 {min, max, points} bands")
    bands = []
    for i, band in enumerate(raw):
        if not isinstance(band, dict) or set(band) - {"min", "max", "points"} or "points" not in band:
            raise IcpConfigError(f"icp.company_size[{i}] must be {{min, max, points}}")
        low, high = band.get("min", 0), band.get("max")
        if isinstance(low, bool) or not isinstance(low, int) or low < 0 or \
                (high is not None and (isinstance(high, bool) or not isinstance(high, int) or high < low)):
            raise IcpConfigError(f"icp.company_size[{i}]: min/max must be whole numbers with 0 <= min <= max")
        bands.append(SizeBand(low, high, _points(band["points"], f"company_size[{i}].points")))
    return tuple(bands)


def icp_rules_of(config: Any) -> IcpRules:
    """Read ``settings.icp``; raises ``IcpConfigError`` naming what is wrong."""
    if not isinstance(config, dict) or not config:
        raise IcpConfigError("icp must be a non-empty object")
    unknown = sorted(set(config) - {"base", "seniority", "industries", "company_size", "sources", "email",
                                    "engagement"})
    if unknown:
        raise IcpConfigError(f"icp has unknown keys {unknown}")
    engagement = config.get("engagement", {})
    if not isinstance(engagement, dict) or set(engagement) - set(_ENGAGEMENT_KEYS):
        raise IcpConfigError(f"icp.engagement takes {list(_ENGAGEMENT_KEYS)}")
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    return IcpRules(
        version=f"icp-rules-{digest}",
        base=_points(config.get("base", 0), "base"),
        seniority=_table(config, "seniority"),
        industries=_table(config, "industries"),
        company_size=_bands(config.get("company_size", [])),
        sources=_table(config, "sources"),
        email=_table(config, "email"),
        engagement={k: _points(v, f"engagement.{k}") for k, v in engagement.items()},
    )


def _label(name: str) -> str:
    return name.replace("_", " ")


def _factors(profile: LeadProfile, rules: IcpRules) -> list[ScoreFactor]:
    factors: list[ScoreFactor] = []

    def add(group: str, points: float, text: str) -> None:
        if points:
            factors.append(ScoreFactor(group, points, f"{text} ({points:+g} points)"))

    title = f" ({profile.title})" if profile.title else ""
    add("title", rules.seniority.get(profile.seniority, 0.0), f"{_label(profile.seniority)} title{title}")
    add("industry", rules.industries.get(profile.industry, 0.0), f"industry: {_label(profile.industry)}")
    if profile.company_size is not None:
        for band in rules.company_size:
            if band.min <= profile.company_size and (band.max is None or profile.company_size <= band.max):
                add("company_size", band.points, f"{profile.company_size} employees")
                break
    add("source", rules.sources.get(profile.source, 0.0), f"source: {_label(profile.source)}")
    email = f" ({profile.email_domain})" if profile.email_domain else ""
    add("email", rules.email.get(profile.email_kind, 0.0), f"{profile.email_kind} email{email}")
    e, cfg = profile.engagement, rules.engagement
    if e.calls:
        call_points = e.calls * cfg.get("per_call", 0.0)
        cap = cfg.get("max_call_points")
        if cap is not None:
            call_points = min(call_points, cap)
        add("calls", call_points, f"{e.calls} call{'s' if e.calls != 1 else ''}")
    add("buying_signals", e.keyword_hits * cfg.get("per_buying_signal", 0.0),
        f"{e.keyword_hits} buying-signal phrase{'s' if e.keyword_hits != 1 else ''} on calls")
    add("objections", e.objection_hits * cfg.get("per_objection", 0.0),
        f"{e.objection_hits} objection{'s' if e.objection_hits != 1 else ''} on calls")
    if e.avg_sentiment is not None and e.avg_sentiment > 0:
        add("sentiment", cfg.get("positive_sentiment", 0.0), "positive customer sentiment on calls")
    return factors


def score_icp(lead: dict[str, Any], rules: IcpRules) -> LeadScore:
    """Score one lead against the organisation's ICP (raises ``LeadInputError`` like ``score_lead``)."""
    profile = profile_of(lead)
    factors = sorted(_factors(profile, rules), key=lambda f: f.effect, reverse=True)
    score = round(min(100.0, max(0.0, rules.base + sum(f.effect for f in factors))))
    positives = [f"Matches the ideal customer profile: {f.text}" for f in factors if f.effect > 0]
    negatives = [f"Held back by {f.text}" for f in reversed(factors) if f.effect < 0]
    return LeadScore(
        score=score,
        grade=grade_for(score),
        reasons=positives[:_MAX_POSITIVE] + negatives[:_MAX_NEGATIVE],
        model_version=rules.version,
        factors=factors,
        probability=score / 100.0,
    )
