"""Turning a lead record into the numbers the lead-scoring model reads.

Each raw field is normalised into a small, closed vocabulary (seniority
levels, industry families, lead sources, free vs corporate email) so that
free-text CRM data ("VP, Sales EMEA", "SaaS", "demo-request") lands in the
same place as the training data. ``LeadInputError`` names the field and the
problem for input that cannot be read; unknown words are not errors, they
fall into the "other" bucket.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np


class LeadInputError(ValueError):
    """A lead field holds a value that cannot be scored (e.g. a negative company size)."""


SENIORITY_LEVELS = ("c_level", "vp", "director", "manager")  # baseline: individual contributor
INDUSTRIES = ("software", "financial_services", "healthcare", "manufacturing", "retail", "education")
SOURCES = ("referral", "inbound_demo", "webinar", "event", "website", "paid_ads", "cold_outbound",
           "purchased_list")

FEATURES: tuple[str, ...] = (
    *(f"seniority_{s}" for s in SENIORITY_LEVELS),
    "company_size_log",
    "company_size_log_sq",
    "company_size_unknown",
    *(f"industry_{i}" for i in INDUSTRIES),
    *(f"source_{s}" for s in SOURCES),
    "email_free",
    "email_missing",
    "calls_log",
    "talk_minutes_log",
    "sentiment",
    "keyword_hits_log",
    "objection_hits_log",
)

# Checked in this order: "Vice President" must not read as "President".
_SENIORITY_PATTERNS = (
    ("vp", re.compile(r"\b(vp|svp|evp|avp|vice[\s-]+president)\b")),
    ("c_level", re.compile(r"\b(c[etfoimr]o|chief|founder|co-?founder|owner|president|partner)\b")),
    ("director", re.compile(r"\b(director|head\s+of|head)\b")),
    ("manager", re.compile(r"\b(manager|mgr|lead|supervisor)\b")),
)
SENIORITY_LABELS = {
    "c_level": "C-level / founder title",
    "vp": "VP-level title",
    "director": "Director-level title",
    "manager": "Manager-level title",
    "individual": "Individual-contributor title",
}

_INDUSTRY_WORDS = (
    ("software", ("software", "saas", "technology", "tech", "it services", "internet", "cloud")),
    ("financial_services", ("financ", "fintech", "bank", "insurance", "invest", "payments")),
    ("healthcare", ("health", "medical", "hospital", "pharma", "biotech", "clinic")),
    ("manufacturing", ("manufactur", "industrial", "automotive", "machinery")),
    ("retail", ("retail", "e-commerce", "ecommerce", "consumer", "wholesale")),
    ("education", ("educat", "university", "school", "college", "edtech")),
)
INDUSTRY_LABELS = {
    "software": "software", "financial_services": "financial services", "healthcare": "healthcare",
    "manufacturing": "manufacturing", "retail": "retail", "education": "education", "other": "other",
}

_SOURCE_ALIASES = {
    "referral": "referral", "partner": "referral", "customer_referral": "referral",
    "inbound_demo": "inbound_demo", "demo_request": "inbound_demo", "demo": "inbound_demo",
    "contact_form": "inbound_demo", "inbound": "inbound_demo", "pricing_page": "inbound_demo",
    "webinar": "webinar",
    "event": "event", "conference": "event", "trade_show": "event", "tradeshow": "event",
    "website": "website", "organic": "website", "seo": "website", "blog": "website",
    "content": "website", "newsletter": "website",
    "paid_ads": "paid_ads", "ads": "paid_ads", "paid": "paid_ads", "ppc": "paid_ads",
    "google_ads": "paid_ads", "linkedin_ads": "paid_ads", "paid_social": "paid_ads",
    "cold_outbound": "cold_outbound", "outbound": "cold_outbound", "cold_call": "cold_outbound",
    "cold_email": "cold_outbound", "prospecting": "cold_outbound",
    "purchased_list": "purchased_list", "list": "purchased_list", "list_import": "purchased_list",
    "purchased": "purchased_list",
}
SOURCE_LABELS = {
    "referral": "referral", "inbound_demo": "inbound demo request", "webinar": "webinar",
    "event": "event", "website": "website", "paid_ads": "paid ads", "cold_outbound": "cold outbound",
    "purchased_list": "purchased list", "other": "unknown source",
}

FREE_EMAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com",
    "hotmail.com", "hotmail.co.uk", "outlook.com", "live.com", "msn.com", "aol.com",
    "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de",
    "gmx.net", "web.de", "mail.com", "mail.ru", "yandex.com", "yandex.ru", "zoho.com",
    "qq.com", "163.com", "126.com", "fastmail.com", "hey.com", "tutanota.com",
})


@dataclass(frozen=True, slots=True)
class Engagement:
    """What calls told us about a lead (zeros for a lead nobody has called yet)."""

    calls: int = 0
    talk_time_s: float = 0.0
    avg_sentiment: float | None = None  # mean customer sentiment in [-1, 1]; None: no scored speech
    keyword_hits: int = 0  # buying-intent phrases (pricing, timeline, "send the contract")
    objection_hits: int = 0  # objections (too expensive, no budget, not now)


@dataclass(frozen=True, slots=True)
class LeadProfile:
    """The normalised reading of one lead; the reasons are written from it."""

    seniority: str
    title: str
    company_size: int | None
    industry: str
    source: str
    email_kind: str  # corporate | free | missing
    email_domain: str | None
    engagement: Engagement


def seniority_of(title: str | None) -> str:
    text = (title or "").lower()
    for level, pattern in _SENIORITY_PATTERNS:
        if pattern.search(text):
            return level
    return "individual"


def industry_of(industry: str | None) -> str:
    text = (industry or "").lower()
    for family, words in _INDUSTRY_WORDS:
        if any(word in text for word in words):
            return family
    return "other"


def source_of(source: str | None) -> str:
    key = re.sub(r"[\s\-/]+", "_", (source or "").strip().lower())
    return _SOURCE_ALIASES.get(key, "other")


def email_kind_of(email: str | None) -> tuple[str, str | None]:
    if not email or "@" not in str(email):
        return "missing", None
    domain = str(email).rsplit("@", 1)[1].strip().lower()
    if not domain:
        return "missing", None
    return ("free" if domain in FREE_EMAIL_DOMAINS else "corporate"), domain


def _number(lead: dict[str, Any], key: str, default: float | None) -> float | None:
    value = lead.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LeadInputError(f"{key} must be a finite number, got {value!r}")
    return float(value)


def engagement_of(lead: dict[str, Any]) -> Engagement:
    """Read ``lead["engagement"]`` (or the same keys at the top level)."""
    source = lead.get("engagement")
    if source is None:
        source = lead
    elif not isinstance(source, dict):
        raise LeadInputError(f"engagement must be an object, got {type(source).__name__}")
    values = {}
    for key in ("calls", "talk_time_s", "keyword_hits", "objection_hits"):
        value = _number(source, key, 0.0)
        if value < 0:
            raise LeadInputError(f"{key} must not be negative, got {value!r}")
        values[key] = value
    sentiment = _number(source, "avg_sentiment", None)
    if sentiment is not None:
        sentiment = max(-1.0, min(1.0, sentiment))
    return Engagement(
        calls=int(values["calls"]),
        talk_time_s=values["talk_time_s"],
        avg_sentiment=sentiment,
        keyword_hits=int(values["keyword_hits"]),
        objection_hits=int(values["objection_hits"]),
    )


def profile_of(lead: dict[str, Any]) -> LeadProfile:
    if not isinstance(lead, dict):
        raise LeadInputError(f"a lead must be an object, got {type(lead).__name__}")
    size = _number(lead, "company_size", None)
    if size is not None and size < 0:
        raise LeadInputError(f"company_size must not be negative, got {size!r}")
    for key in ("title", "industry", "source", "email"):
        if lead.get(key) is not None and not isinstance(lead[key], str):
            raise LeadInputError(f"{key} must be text, got {type(lead[key]).__name__}")
    email_kind, domain = email_kind_of(lead.get("email"))
    return LeadProfile(
        seniority=seniority_of(lead.get("title")),
        title=(lead.get("title") or "").strip(),
        company_size=None if size is None else int(size),
        industry=industry_of(lead.get("industry")),
        source=source_of(lead.get("source")),
        email_kind=email_kind,
        email_domain=domain,
        engagement=engagement_of(lead),
    )


def vector_of(profile: LeadProfile) -> np.ndarray:
    """The feature vector, in the order of ``FEATURES``."""
    e = profile.engagement
    size_log = math.log10(profile.company_size + 1) if profile.company_size is not None else 0.0
    values: list[float] = [1.0 if profile.seniority == s else 0.0 for s in SENIORITY_LEVELS]
    values += [size_log, size_log * size_log, 1.0 if profile.company_size is None else 0.0]
    values += [1.0 if profile.industry == i else 0.0 for i in INDUSTRIES]
    values += [1.0 if profile.source == s else 0.0 for s in SOURCES]
    values += [1.0 if profile.email_kind == "free" else 0.0,
               1.0 if profile.email_kind == "missing" else 0.0]
    values += [
        math.log1p(e.calls),
        math.log1p(e.talk_time_s / 60.0),
        e.avg_sentiment or 0.0,
        math.log1p(e.keyword_hits),
        math.log1p(e.objection_hits),
    ]
    return np.asarray(values, dtype=np.float64)
