"""The post-call summary: key points, objections, competitors, next steps, action items.

Extractive and rule based (no network, no model): sentences are taken from
the (redacted) transcript and picked by patterns — commitments ("I'll send
you the proposal"), requests ("can you send me pricing"), scheduling
("let's meet Tuesday") — and by the keyword hits they carry.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from coaching.records import ActionItem, CallSummary, KeywordHit, Objection, TalkMetrics
from coaching.tokens import fold

_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]*")
_ACTIONS = (r"send|e-?mail|share|forward|follow up|get back|set up|schedule|book|put together|"
            r"loop in|check|call|draft|prepare|circle back|review|look into|talk to|run it by|"
            r"sign|confirm|introduce|invite|write up|update")
_COMMITMENT_RE = re.compile(
    r"\b(i'll|i will|i'm going to|i am going to|let me|i can|i'd be happy to|"
    r"we'll|we will|we're going to|we can)\s+(?:\w+\s+){0,2}?(" + _ACTIONS + r")\b")
_REQUEST_RE = re.compile(r"\b(can|could|would|will) you\s+(?:please\s+)?(?:\w+\s+){0,1}?("
                         + _ACTIONS + r")\b")
_NEXT_STEP_RE = re.compile(
    r"\b(let's|let us|shall we|should we|we should|how about|does|would|can we|could we)\b"
    r".*\b(meet|meeting|schedule|set up|book|talk|call|demo|catch up|reconvene|follow up|"
    r"sync|touch base|trial|pilot)\b")
_DUE_RE = re.compile(
    r"\b(today|tonight|tomorrow|this (?:afternoon|morning|evening|week)|next (?:week|month)|"
    r"(?:next |this |on |by )?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|"
    r"end of (?:the )?(?:day|week|month|quarter)|"
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
    r"\s+\d{1,2}(?:st|nd|rd|th)?|\d{1,2}(?::\d\d)?\s?(?:am|pm|a\.m\.|p\.m\.))\b")
_LEADING_FILLER_RE = re.compile(r"^(?:(?:so|okay|ok|well|and|um|uh|great|perfect|sure|yeah),?\s+)+",
                                re.IGNORECASE)
_KEY_CATEGORIES = ("competitor", "pricing", "budget", "next_step")


@dataclass(frozen=True, slots=True)
class Utterance:
    segment_id: str
    party: str
    text: str          # redacted
    start_ms: int
    end_ms: int


def sentences(utterance: Utterance) -> list[str]:
    return [s.strip() for s in _SENTENCE_RE.findall(utterance.text) if s.strip()]


def _clean(sentence: str) -> str:
    sentence = _LEADING_FILLER_RE.sub("", sentence.strip())
    return sentence[:1].upper() + sentence[1:]


def _due(folded: str) -> str | None:
    match = _DUE_RE.search(folded)
    return match.group(0) if match else None


def extract_actions(utterances: list[Utterance]) -> tuple[list[ActionItem], list[ActionItem]]:
    """(action items, next steps) in call order; a sentence is one or the other, not both."""
    actions: list[ActionItem] = []
    next_steps: list[ActionItem] = []
    for u in utterances:
        other = "customer" if u.party == "rep" else "rep"
        for sentence in sentences(u):
            folded = fold(sentence).replace("’", "'")
            if _NEXT_STEP_RE.search(folded) and (_due(folded) or "next step" in folded):
                next_steps.append(ActionItem("both", _clean(sentence), u.start_ms, _due(folded)))
                continue
            commitment = _COMMITMENT_RE.search(folded)
            if commitment:
                owner = "both" if commitment.group(1).startswith("we") else u.party
                actions.append(ActionItem(owner, _clean(sentence), u.start_ms, _due(folded)))
                continue
            if _REQUEST_RE.search(folded):
                actions.append(ActionItem(other, _clean(sentence), u.start_ms, _due(folded)))
    return actions, next_steps


def build_summary(utterances: list[Utterance], hits: list[KeywordHit],
                  objection_categories: set[str], metrics: TalkMetrics | None,
                  trend: dict[str, tuple[tuple[int, float], ...]],
                  checklist_missed: list[str], duration_ms: int) -> CallSummary:
    by_segment = {u.segment_id: u for u in utterances}
    actions, next_steps = extract_actions(utterances)
    objections = []
    for hit in hits:
        if hit.category in objection_categories:
            u = by_segment.get(hit.segment_id)
            objections.append(Objection(hit.category, hit.keyword,
                                        _sentence_with(u, hit.matched_text) if u
                                        else hit.matched_text,
                                        hit.start_ms))
    competitors = list(dict.fromkeys(h.keyword for h in hits if h.category == "competitor"))
    counts = Counter(h.category for h in hits)
    key_points = _key_points(utterances, hits, objection_categories)
    customer = trend.get("customer", ())
    signals = {
        "competitors": competitors,
        "objections": sorted({o.category for o in objections}),
        "pricing_discussed": counts.get("pricing", 0) > 0,
        "budget_discussed": counts.get("budget", 0) > 0,
        "next_step_agreed": bool(next_steps) or counts.get("next_step", 0) > 0,
        "customer_sentiment_start": customer[0][1] if customer else None,
        "customer_sentiment_end": customer[-1][1] if customer else None,
        "talk_ratio": metrics.talk_ratio if metrics else None,
    }
    text = _text(duration_ms, metrics, objections, competitors, next_steps, actions, customer,
                 checklist_missed)
    return CallSummary(text=text, key_points=tuple(key_points), action_items=tuple(actions),
                       next_steps=tuple(next_steps), objections=tuple(objections),
                       competitors=tuple(competitors), keyword_counts=dict(sorted(counts.items())),
                       metrics=metrics, sentiment_trend=trend,
                       checklist_missed=tuple(checklist_missed), duration_ms=duration_ms,
                       signals=signals)


def _sentence_with(u: Utterance, matched: str) -> str:
    target = fold(matched)
    for sentence in sentences(u):
        if target in fold(sentence):
            return _clean(sentence)
    return _clean(u.text)


def _key_points(utterances: list[Utterance], hits: list[KeywordHit],
                objection_categories: set[str], limit: int = 6) -> list[str]:
    wanted = set(_KEY_CATEGORIES) | objection_categories
    flagged = {(h.segment_id, fold(h.matched_text)) for h in hits if h.category in wanted}
    points: list[str] = []
    for u in utterances:
        for sentence in sentences(u):
            folded = fold(sentence)
            keyed = any(seg == u.segment_id and text in folded for seg, text in flagged)
            question = u.party == "customer" and sentence.endswith("?") and len(folded.split()) >= 4
            if keyed or question:
                point = f"{u.party.capitalize()}: {_clean(sentence)}"
                if point not in points:
                    points.append(point)
    return points[:limit]


def _text(duration_ms, metrics, objections, competitors, next_steps, actions, customer,
          missed) -> str:
    minutes, seconds = divmod(round(duration_ms / 1000), 60)
    parts = [f"{minutes} min {seconds:02d} s call."]
    if metrics:
        parts.append(f"The rep talked {metrics.talk_ratio:.0%} of the time; the rep's longest "
                     f"monologue {metrics.rep_longest_monologue_ms / 1000:.0f} s.")
    if objections:
        parts.append("Objections: " + "; ".join(dict.fromkeys(o.keyword for o in objections)) + ".")
    if competitors:
        parts.append("Competitors mentioned: " + ", ".join(competitors) + ".")
    if next_steps:
        parts.append("Next steps: " + " ".join(s.text for s in next_steps[:3]))
    else:
        parts.append("No next step was agreed.")
    if actions:
        parts.append(f"{len(actions)} action item{'s' if len(actions) != 1 else ''}.")
    if len(customer) >= 2:
        parts.append(f"Customer sentiment went from {customer[0][1]:+.2f} "
                     f"to {customer[-1][1]:+.2f}.")
    if missed:
        parts.append("Checklist missed: " + ", ".join(missed) + ".")
    return " ".join(parts)
