"""Questions and prompts followed, as coaching/call_analytics.py defines them."""

from __future__ import annotations

from coaching.call_analytics import prompt_followed, questions_in
from coaching.records import CoachingPrompt, KeywordHit
from coaching.rule_set import default_rule_set
from coaching.summary import Utterance

RULES = {r.id: r for r in default_rule_set().rules}


def rep(start_ms: int, text: str) -> Utterance:
    return Utterance(f"r{start_ms}", "rep", text, start_ms, start_ms + 2000)


def prompt(
    rule_id: str, at_ms: int, party: str | None, evidence=(), title="", body=""
) -> CoachingPrompt:
    rule = RULES[rule_id]
    return CoachingPrompt(
        rule_id,
        rule.trigger,
        rule.severity,
        title or rule.title,
        body or rule.body,
        at_ms,
        party,
        tuple(evidence),
    )


def hit(category: str, start_ms: int, party: str = "rep") -> KeywordHit:
    return KeywordHit("s", party, category, "x", "x", start_ms, start_ms + 500, 0, 1, "exact", 1.0)


def test_questions_by_mark_or_by_opener():
    assert questions_in("How are you? Fine. What do you like about it?") == 2
    assert questions_in("what do you use today") == 1  # unpunctuated, opens with a question word
    assert questions_in("What a day.") == 0  # punctuated as a statement
    assert questions_in("Let's meet on Tuesday") == 0


def test_a_customer_keyword_prompt_is_followed_by_its_keyword_or_a_question_in_the_window():
    p = prompt(
        "competitor-battlecard",
        10_000,
        "customer",
        evidence=("Gong",),
        title="Competitor: Gong",
        body="The customer mentioned Gong. Open the battle card and ask what they like about it.",
    )
    assert prompt_followed(p, RULES[p.rule_id], [rep(12_000, "Gong is fine.")], [], 30)
    assert prompt_followed(p, RULES[p.rule_id], [rep(12_000, "Which parts work for you?")], [], 30)
    assert not prompt_followed(p, RULES[p.rule_id], [rep(12_000, "Sure, sounds good.")], [], 30)
    assert not prompt_followed(
        p, RULES[p.rule_id], [rep(41_000, "Gong is fine.")], [], 30
    )  # too late
    assert not prompt_followed(
        p, RULES[p.rule_id], [rep(9_000, "Gong is fine.")], [], 30
    )  # before it


def test_a_checklist_prompt_is_followed_by_doing_the_item():
    p = prompt("recording-disclosure", 30_000, "rep")
    assert prompt_followed(
        p, RULES[p.rule_id], [rep(31_000, "x")], [hit("compliance_disclosure", 31_000)], 30
    )
    assert not prompt_followed(
        p, RULES[p.rule_id], [rep(31_000, "Tell you what, the call is great.")], [], 30
    )


def test_a_prompt_on_the_reps_own_words_is_followed_by_not_repeating_them():
    p = prompt(
        "compliance-risk", 5_000, "rep", evidence=("guarantee",), body='Don\'t say "guarantee".'
    )
    assert prompt_followed(p, RULES[p.rule_id], [rep(7_000, "Results vary by team.")], [], 30)
    assert not prompt_followed(
        p, RULES[p.rule_id], [rep(7_000, "I guarantee it.")], [hit("compliance_risk", 7_000)], 30
    )
    assert not prompt_followed(p, RULES[p.rule_id], [], [], 30)  # the rep said nothing


def test_a_metric_prompt_that_says_ask_is_followed_by_a_question():
    p = prompt(
        "long-monologue", 60_000, "rep", body="You've talked for 61 s. Pause and ask a question."
    )
    assert prompt_followed(
        p, RULES[p.rule_id], [rep(63_000, "Does that make sense for your team?")], [], 30
    )
    assert not prompt_followed(
        p, RULES[p.rule_id], [rep(63_000, "And another feature is reports.")], [], 30
    )
