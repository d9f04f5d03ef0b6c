"""The post-call summary: key points, objections, competitors, next steps, action items.

Extractive and rule based (no network, no model): sentences are taken from
the (redacted) transcript and picked by patterns — commitments ("I'll send
you the proposal"), requests ("can you send me pricing", "please send the
contract"), scheduling ("let's meet Tuesday") — and by the keyword hits they carry.

A sentence that only looks like one is left out: a negated commitment ("I'll never
call them"), a hypothetical ("if we go ahead, I'll send..."), a counterfactual ("we
should have had a call"), a capability ("we can send invoices in any currency", "can
you call international numbers?"), a stall ("let me think about it and get back to
you"), in-call housekeeping ("let me share my screen"), or a question about the
product ("does your trial start on a Monday?"). An objection is the customer's, not
negated ("we're not locked into a contract"), and not about the vendor ("do you
already have..."). Measured on labelled scripted calls: docs/coaching.md.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from coaching.records import ActionItem, CallSummary, KeywordHit, Objection, TalkMetrics
from coaching.tokens import fold

_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]*")
_ACTIONS = (
    r"send|e-?mail|share|forward|follow up|get back|set up|schedule|book|put together|"
    r"loop in|check|call|draft|prepare|circle back|review|look into|talk to|run it by|"
    r"sign|confirm|introduce|invite|write up|update"
)
_COMMITMENT_RE = re.compile(
    r"\b(i'll|i will|i'm going to|i am going to|let me|i can|i'd be happy to|"
    r"we'll|we will|we're going to|we can)\s+(?:\w+\s+){0,2}?(" + _ACTIONS + r")\b"
)
_REQUEST_RE = re.compile(
    r"\b(can|could|would|will) you\s+(?:please\s+)?(?:\w+\s+){0,1}?(" + _ACTIONS + r")\b"
)
_NEXT_STEP_RE = re.compile(
    r"\b(let's|let us|shall we|should we|we should|how about|why don't we|we'd like to|"
    r"we would like to|does|would|can we|could we)\b"
    r".*\b(meet|meeting|schedule|set up|book|talk(?! about| through)|call|demo|catch up|"
    r"reconvene|follow up|sync|touch base|trial|pilot|calendar|kickoff|kick-off)\b"
)
# "the next step is a trial", "as a next step, a workshop": named as the next step
_NAMED_NEXT_STEP_RE = re.compile(
    r"\bnext steps? (?:is|are|would be|will be)\b|"
    r"\bas (?:a|the|our) next step\b"
)
# "does/would ... work for you?" proposes a time; "would your reps call on Monday?" does not
_PROPOSAL_RE = re.compile(r"\b(?:work|works|suit|suits)\b")
_NEGATION_RE = re.compile(r"\b(?:not|never|no longer)\b|n't\b")
_HYPOTHETICAL_RE = re.compile(
    r"\b(?:let's|let us) (?:say|assume|imagine|pretend)\b|^(?:suppose|supposing|imagine)\b|"
    r"\b(?:should|would|could|might|must) have\b"
)
# a condition on the task ("if we go ahead, I'll send..."); not "check if", "see if", ...
_CONDITION_RE = re.compile(
    r"(?<!\bcheck )(?<!\bsee )(?<!\bask )(?<!\bknow )(?<!\bout )(?<!\bconfirm )"
    r"(?<!\bwondering )(?<!\bsure )\b(?:if|unless|in case)\b"
)
# things said about the call itself, and stalls: no task comes out of them
_NO_TASK_RE = re.compile(
    r"\b(?:my|your|the) screen\b|\bhear me\b|\bintroduce myself\b|\bthe audio\b|"
    r"\bon mute\b|\b(?:a|one) (?:second|sec|moment)\b|"
    r"\bthink (?:about|it over)\b|\bsleep on it\b|\bmull it over\b"
)
_VAGUE_ACTIONS = frozenset({"get back", "circle back", "follow up", "touch base", "call"})
# nothing said about what or when: "I'll get back to you.", "call me back later"
_VAGUE_REST_RE = re.compile(
    r"^(?:(?:to|with|me|you|us|back|later|soon|on that|on it|"
    r"something|anything|some information)\b\W*)*$"
)
# a request names who or what it is about ("can you send me", "could you share the"):
# "can you send faxes?" asks what the product can do
_REQUEST_OBJECT = frozenset(
    {
        "me",
        "us",
        "it",
        "that",
        "this",
        "the",
        "a",
        "an",
        "our",
        "my",
        "your",
        "those",
        "these",
        "them",
        "him",
        "her",
        "over",
        "back",
        "whether",
        "if",
        "out",
        "up",
        "in",
        "with",
        "to",
        "through",
        "all",
    }
)
_NEGATORS = frozenset({"not", "never", "no", "dont", "isnt", "arent", "wasnt", "werent"})
_VAGUE_OBJECT_RE = re.compile(r"(?:some information|some info|something|anything)\b")
_IMPERATIVE_RE = re.compile(
    r"^(?:please\s+)?(send|e-?mail|forward|share|call|schedule|book|confirm|invite|introduce|"
    r"check|update|review|sign)\s+(?:me|us|the|our|my|over|it|a|an|that|this|your)\b(.*)$"
)
_DUE_RE = re.compile(
    r"\b(today|tonight|tomorrow|this (?:afternoon|morning|evening|week)|next (?:week|month)|"
    r"(?:next |this |on |by )?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|"
    r"end of (?:the )?(?:day|week|month|quarter)|"
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december)"
    r"\s+\d{1,2}(?:st|nd|rd|th)?|\d{1,2}(?::\d\d)?\s?(?:am|pm|a\.m\.|p\.m\.))\b"
)
_LEADING_FILLER_RE = re.compile(
    r"^(?:(?:so|okay|ok|well|and|um|uh|great|perfect|sure|yeah),?\s+)+", re.IGNORECASE
)
_KEY_CATEGORIES = ("competitor", "pricing", "budget", "next_step")


@dataclass(frozen=True, slots=True)
class Utterance:
    segment_id: str
    party: str
    text: str  # redacted
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


def _is_next_step(folded: str) -> bool:
    if _NAMED_NEXT_STEP_RE.search(folded):
        return True
    match = _NEXT_STEP_RE.search(folded)
    if not match or not (_due(folded) or "next step" in folded):
        return False
    if _NEGATION_RE.search(folded.replace("why don't we", "why do we")):
        return False
    if match.group(1) in ("does", "would") and not _PROPOSAL_RE.search(folded):
        return False
    return not _HYPOTHETICAL_RE.search(folded)


def _vague(action: str, rest: str, folded: str) -> bool:
    return (
        action in _VAGUE_ACTIONS
        and not _due(folded)
        and bool(_VAGUE_REST_RE.match(rest.strip(" .!?,")))
    )


def _task_owner(folded: str, party: str) -> str | None:
    """Who owes the task this sentence states, or None when it states none."""
    other = "customer" if party == "rep" else "rep"
    if (
        _NO_TASK_RE.search(folded)
        or _HYPOTHETICAL_RE.search(folded)
        or _CONDITION_RE.search(folded)
    ):
        return None
    commitment = _COMMITMENT_RE.search(folded)
    if commitment:
        between = folded[commitment.end(1) : commitment.start(2)]
        rest = folded[commitment.end(2) :]
        capability = commitment.group(1) in ("i can", "we can") and not (
            re.search(r"\byou\b", rest) or _due(folded)
        )
        if not (
            _NEGATION_RE.search(between) or capability or _vague(commitment.group(2), rest, folded)
        ):
            return "both" if commitment.group(1).startswith("we") else party
        return None
    request = _REQUEST_RE.search(folded)
    if request:
        after = folded[request.end(2) :].split()
        word = after[0].strip(",.?!") if after else ""
        if word in _REQUEST_OBJECT and not _vague(request.group(2), " ".join(after), folded):
            return other
        return None
    imperative = _IMPERATIVE_RE.match(_LEADING_FILLER_RE.sub("", folded))
    if imperative:
        rest = imperative.group(2).strip(" .!?,")
        if not (_VAGUE_REST_RE.match(rest) or _VAGUE_OBJECT_RE.match(rest)):
            return other
    return None


def extract_actions(utterances: list[Utterance]) -> tuple[list[ActionItem], list[ActionItem]]:
    """(action items, next steps) in call order; a sentence is one or the other, not both."""
    actions: list[ActionItem] = []
    next_steps: list[ActionItem] = []
    for u in utterances:
        for sentence in sentences(u):
            folded = fold(sentence).replace("’", "'")
            if _is_next_step(folded):
                next_steps.append(ActionItem("both", _clean(sentence), u.start_ms, _due(folded)))
                continue
            owner = _task_owner(folded, u.party)
            if owner:
                actions.append(ActionItem(owner, _clean(sentence), u.start_ms, _due(folded)))
    return actions, next_steps


def build_summary(
    utterances: list[Utterance],
    hits: list[KeywordHit],
    objection_categories: set[str],
    metrics: TalkMetrics | None,
    trend: dict[str, tuple[tuple[int, float], ...]],
    checklist_missed: list[str],
    duration_ms: int,
) -> CallSummary:
    by_segment = {u.segment_id: u for u in utterances}
    actions, next_steps = extract_actions(utterances)
    objections = []
    for hit in hits:
        if hit.category in objection_categories:
            u = by_segment.get(hit.segment_id)
            if u is not None and not _customer_objects(u, hit.matched_text):
                continue
            objections.append(
                Objection(
                    hit.category,
                    hit.keyword,
                    _sentence_with(u, hit.matched_text) if u else hit.matched_text,
                    hit.start_ms,
                )
            )
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
    text = _text(
        duration_ms,
        metrics,
        objections,
        competitors,
        next_steps,
        actions,
        customer,
        checklist_missed,
    )
    return CallSummary(
        text=text,
        key_points=tuple(key_points),
        action_items=tuple(actions),
        next_steps=tuple(next_steps),
        objections=tuple(objections),
        competitors=tuple(competitors),
        keyword_counts=dict(sorted(counts.items())),
        metrics=metrics,
        sentiment_trend=trend,
        checklist_missed=tuple(checklist_missed),
        duration_ms=duration_ms,
        signals=signals,
    )


def _customer_objects(u: Utterance, matched: str) -> bool:
    """Whether the customer raised the objection this phrase names in ``u``.

    Not when the rep says it ("teams tell us it's too expensive at first"), when it is
    negated just before ("we're not locked into a contract") or when its subject is the
    vendor ("do you already have a HubSpot integration?").
    """
    if u.party != "customer":
        return False
    target = fold(matched)
    for sentence in sentences(u):
        folded = fold(sentence).replace("’", "'")
        at = folded.find(target)
        if at < 0:
            continue
        before = folded[:at].split()[-3:]
        if any(w in _NEGATORS or w.endswith("n't") for w in before):
            return False
        return not (before and before[-1] in ("you", "your"))
    return True


def _sentence_with(u: Utterance, matched: str) -> str:
    target = fold(matched)
    for sentence in sentences(u):
        if target in fold(sentence):
            return _clean(sentence)
    return _clean(u.text)


def _key_points(
    utterances: list[Utterance],
    hits: list[KeywordHit],
    objection_categories: set[str],
    limit: int = 6,
) -> list[str]:
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


def _text(
    duration_ms, metrics, objections, competitors, next_steps, actions, customer, missed
) -> str:
    minutes, seconds = divmod(round(duration_ms / 1000), 60)
    parts = [f"{minutes} min {seconds:02d} s call."]
    if metrics:
        parts.append(
            f"The rep talked {metrics.talk_ratio:.0%} of the time; the rep's longest "
            f"monologue {metrics.rep_longest_monologue_ms / 1000:.0f} s."
        )
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
        parts.append(
            f"Customer sentiment went from {customer[0][1]:+.2f} to {customer[-1][1]:+.2f}."
        )
    if missed:
        parts.append("Checklist missed: " + ", ".join(missed) + ".")
    return " ".join(parts)
