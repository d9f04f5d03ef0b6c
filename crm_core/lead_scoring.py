"""Lead scoring — BASELINE, used until crm-intel's model lands on main.

``score_lead(lead) -> LeadScore`` is the agreed interface: a lead as a plain
dict (the ``leads`` row's fields), a score 0–100, a grade A–D and the
reasons in plain words. This baseline is a transparent ideal-customer-profile
rule score (firmographic + demographic fit + reachability); crm-intel's
module replaces this file with the same function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODEL_VERSION = "baseline-icp-1"

_SENIOR = ("chief", "ceo", "cto", "cfo", "coo", "vp", "vice president", "head", "director", "founder", "owner")
_MIDDLE = ("manager", "lead", "principal", "senior")
_FIT_INDUSTRIES = ("software", "saas", "technology", "financial", "fintech", "insurance", "telecom")


@dataclass(frozen=True, slots=True)
class LeadScore:
    score: float
    grade: str
    reasons: list[str] = field(default_factory=list)


def grade_for(score: float) -> str:
    return "A" if score >= 75 else "B" if score >= 50 else "C" if score >= 25 else "D"


def score_lead(lead: dict[str, Any]) -> LeadScore:
    points = 10.0
    reasons: list[tuple[float, str]] = []
    size = lead.get("company_size")
    if isinstance(size, int):
        if 50 <= size <= 5000:
            reasons.append((30, f"company size {size} fits the ideal customer profile"))
        elif size > 5000:
            reasons.append((20, f"large company ({size} employees)"))
        elif size >= 10:
            reasons.append((10, f"small company ({size} employees)"))
    industry = (lead.get("industry") or "").lower()
    if industry and any(word in industry for word in _FIT_INDUSTRIES):
        reasons.append((20, f"industry '{lead['industry']}' is a strong fit"))
    elif industry:
        reasons.append((5, f"industry '{lead['industry']}' is known"))
    title = (lead.get("title") or "").lower()
    if any(word in title for word in _SENIOR):
        reasons.append((25, f"senior title '{lead['title']}'"))
    elif any(word in title for word in _MIDDLE):
        reasons.append((12, f"mid-level title '{lead['title']}'"))
    if lead.get("email") and lead.get("phone"):
        reasons.append((10, "reachable by email and phone"))
    elif lead.get("email") or lead.get("phone"):
        reasons.append((5, "reachable by " + ("email" if lead.get("email") else "phone")))
    if (lead.get("source") or "").lower() in ("referral", "inbound", "demo request"):
        reasons.append((5, f"came in through '{lead['source']}'"))
    points += sum(p for p, _ in reasons)
    score = max(0.0, min(100.0, points))
    reasons.sort(key=lambda r: -r[0])
    return LeadScore(round(score, 1), grade_for(score), [text for _, text in reasons[:5]])
