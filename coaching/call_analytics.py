"""What a finished call adds to team analytics: questions, sentiment, prompts followed, checklist.

The talk metrics (coaching/talk_metrics.py) say how the call went; this module
adds the figures a manager compares across calls and reps. Definitions (the
tests hand-compute them from these):

- question: a sentence of a party's final segment that ends in "?", or, when
  the transcriber left the sentence unpunctuated, that opens with a question
  word ("what", "how", "do you", "could you", ...). Counted per party.
- sentiment: the mean of a party's per-segment scores (-1..+1); None when the
  party said nothing scored.
- prompt followed: the rep acted on a prompt within ``follow_s`` seconds of it
  (the rule set option ``prompt_follow_s``, 30 s by default), judged on the
  rep's final segments that start in [prompt, prompt + follow_s]:

  * a checklist prompt: the rep says a phrase of the rule's keyword category
    (the item gets done);
  * a keyword prompt raised by the rep's own words (e.g. "guarantee", a
    compliance risk): the rep speaks again in the window without saying a
    phrase of that category again (the correction);
  * any other prompt (a customer's keyword, a metric, sentiment, silence): the
    rep is on the prompt's topic, i.e. says a topic word — a word of the
    keyword that raised it, or a content word (4+ letters, not among the
    common words of coaching/data/common_words.json) of the prompt's title or
    body, compared by stem — or, when the prompt tells the rep to ask
    ("ask a question", "ask what they like"), asks a question.
- checklist completion: the rule set's checklist items the rep ticked, of all.
- competitors and objections heard: the competitor names and the objection
  categories the call's keyword hits carry, with their hit counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

from coaching.records import CoachingPrompt, KeywordHit, SentimentScore
from coaching.rule_set import Rule
from coaching.summary import Utterance
from coaching.tokens import normalise, stem, tokenise

DEFAULT_FOLLOW_S = 30.0

_SENTENCE_RE = re.compile(r"[^.!?]+[.!?]*")
_QUESTION_OPENERS = (
    "what",
    "how",
    "why",
    "when",
    "where",
    "who",
    "whom",
    "whose",
    "which",
    "do you",
    "does",
    "did you",
    "can you",
    "could you",
    "would you",
    "will you",
    "is it",
    "is that",
    "is there",
    "are you",
    "are there",
    "have you",
    "has",
    "should we",
    "shall we",
    "may i",
    "can i",
    "can we",
    "could we",
)
_ASK_RE = re.compile(r"\bask\b", re.IGNORECASE)


@cache
def _common_words() -> frozenset[str]:
    path = Path(__file__).resolve().parent / "data" / "common_words.json"
    return frozenset(json.loads(path.read_text(encoding="utf-8")))


def questions_in(text: str) -> int:
    """How many of ``text``'s sentences are questions (see the module's definition)."""
    count = 0
    for sentence in _SENTENCE_RE.findall(text):
        stripped = sentence.strip()
        if not stripped:
            continue
        if stripped.endswith("?"):
            count += 1
        elif not stripped.endswith((".", "!")):
            words = normalise(stripped)
            if any(
                words == opener or words.startswith(opener + " ") for opener in _QUESTION_OPENERS
            ):
                count += 1
    return count


def topic_stems(prompt: CoachingPrompt) -> frozenset[str]:
    """The stems of the prompt's topic words: its keyword's words and its title's and body's content words."""
    common = _common_words()
    stems = set()
    for phrase in prompt.evidence if prompt.kind == "keyword" else ():
        stems |= {stem(t.norm) for t in tokenise(phrase) if t.is_word}
    for text in (prompt.title, prompt.body):
        for token in tokenise(text):
            if token.is_word and len(token.norm) >= 4 and token.norm not in common:
                stems.add(stem(token.norm))
    return frozenset(stems)


@dataclass(frozen=True, slots=True)
class PromptOutcome:
    rule_id: str
    at_ms: int
    followed: bool


def prompt_followed(
    prompt: CoachingPrompt,
    rule: Rule | None,
    rep_lines: Sequence[Utterance],
    rep_hits: Sequence[KeywordHit],
    follow_s: float,
) -> bool:
    """Did the rep act on ``prompt`` within ``follow_s`` seconds? (the module's definition)."""
    end_ms = prompt.at_ms + follow_s * 1000
    lines = [u for u in rep_lines if prompt.at_ms <= u.start_ms <= end_ms]
    category = rule.category if rule is not None else None
    hits_in_window = [
        h
        for h in rep_hits
        if prompt.at_ms <= h.start_ms <= end_ms and category is not None and h.category == category
    ]
    if prompt.kind == "checklist":
        return bool(hits_in_window)
    if prompt.kind == "keyword" and prompt.party == "rep":
        return bool(lines) and not hits_in_window
    stems = topic_stems(prompt)
    asks = bool(_ASK_RE.search(prompt.title) or _ASK_RE.search(prompt.body))
    for line in lines:
        if asks and questions_in(line.text):
            return True
        if any(stem(t.norm) in stems for t in tokenise(line.text) if t.is_word):
            return True
    return False


@dataclass(frozen=True, slots=True)
class CallAnalytics:
    """A finished call's figures for team analytics (JSON in the call's summary, ``analytics``)."""

    rep_questions: int
    customer_questions: int
    rep_sentiment: float | None
    customer_sentiment: float | None
    prompts_fired: int
    prompts_followed: int
    follow_s: float
    checklist_total: int
    checklist_done: int
    competitors: Mapping[str, int]  # competitor name -> hits
    objections: Mapping[str, int]  # objection category -> hits
    patience_answers: int  # customer turns the rep answered (patience's sample)

    def to_payload(self) -> dict[str, Any]:
        out = asdict(self)
        out["competitors"] = dict(self.competitors)
        out["objections"] = dict(self.objections)
        return out


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def call_analytics(
    utterances: Iterable[Utterance],
    hits: Iterable[KeywordHit],
    scores: Iterable[SentimentScore],
    prompts: Iterable[CoachingPrompt],
    rules: Mapping[str, Rule],
    *,
    objection_categories: set[str] | frozenset[str],
    checklist_total: int,
    checklist_missed: int,
    patience_answers: int,
    follow_s: float = DEFAULT_FOLLOW_S,
) -> CallAnalytics:
    utterances = sorted(utterances, key=lambda u: (u.start_ms, u.end_ms))
    hits = list(hits)
    scores = list(scores)
    rep_lines = [u for u in utterances if u.party == "rep"]
    rep_hits = [h for h in hits if h.party == "rep"]
    questions = {"rep": 0, "customer": 0}
    for u in utterances:
        if u.party in questions:
            questions[u.party] += questions_in(u.text)
    fired = list(prompts)
    followed = sum(
        prompt_followed(p, rules.get(p.rule_id), rep_lines, rep_hits, follow_s) for p in fired
    )
    competitors: dict[str, int] = {}
    objections: dict[str, int] = {}
    for h in hits:
        if h.category == "competitor":
            competitors[h.keyword] = competitors.get(h.keyword, 0) + 1
        elif h.category in objection_categories and h.party == "customer":
            objections[h.category] = objections.get(h.category, 0) + 1
    return CallAnalytics(
        rep_questions=questions["rep"],
        customer_questions=questions["customer"],
        rep_sentiment=_mean([s.score for s in scores if s.party == "rep"]),
        customer_sentiment=_mean([s.score for s in scores if s.party == "customer"]),
        prompts_fired=len(fired),
        prompts_followed=followed,
        follow_s=follow_s,
        checklist_total=checklist_total,
        checklist_done=checklist_total - checklist_missed,
        competitors=dict(sorted(competitors.items())),
        objections=dict(sorted(objections.items())),
        patience_answers=patience_answers,
    )
