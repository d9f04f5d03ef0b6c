"""Whole calls through CallCoach: the right prompts at the right times, never twice."""

from types import SimpleNamespace

import pytest

from coaching import (
    CallCoach,
    CallCoachError,
    CallSummary,
    CoachingPrompt,
    KeywordHit,
    SegmentError,
    SegmentInput,
    SentimentScore,
    TalkMetrics,
    as_event,
    load_rule_set,
)

MONOLOGUE = "Let me walk you through how the platform works for your group."


def scripted_call():
    """(party, start_ms, end_ms, text) of a two-minute call; see the test for what must fire."""
    lines = [
        ("rep", 0, 4_000, "Hi, this is Sam from Coachline. How are you today?"),
        ("customer", 5_000, 9_000, "Good thanks. We use Gong right now."),
        ("rep", 10_000, 13_000, "Got it. What do you like about it?"),
        ("customer", 14_000, 19_000, "Gong is fine but it is too expensive for us."),
        ("customer", 20_000, 23_000, "We also looked at Chorus."),
    ]
    # the rep talks from 40 s in 5 s segments with 0.5 s pauses: one turn of 65.5 s
    lines += [("rep", 40_000 + 5_500 * k, 45_000 + 5_500 * k, MONOLOGUE) for k in range(12)]
    lines += [
        ("customer", 107_000, 110_000, "Okay, that makes sense."),
        # 15 s of silence
        ("rep", 125_000, 128_000, "So what would a good next step be for you?"),
        ("customer", 129_000, 133_000, "Let's meet next Tuesday at 10 am."),
    ]
    return lines


def run_call(coach, lines, end_ms=140_000, tick_ms=1_000):
    """Feeds each segment when it ends and ticks every second, as CallSession would."""
    out = []
    pending = sorted(enumerate(lines), key=lambda x: x[1][2])
    now = 0
    while now <= end_ms:
        while pending and pending[0][1][2] <= now:
            i, (party, start, end, text) = pending.pop(0)
            out += coach.feed(SegmentInput.build(f"seg-{i}", party, text, start, end))
        out += coach.tick(now)
        now += tick_ms
    return out


def test_prompts_fire_at_the_right_times_and_not_twice():
    rule_set = load_rule_set({"disable_rules": ["customer-sentiment-drop"]})
    coach = CallCoach(rule_set)
    prompts = [x for x in run_call(coach, scripted_call()) if isinstance(x, CoachingPrompt)]
    fired = [(p.rule_id, p.at_ms) for p in prompts]
    ids = [rule_id for rule_id, _ in fired]
    # the second "Gong" is inside the battle card's cooldown; "Chorus" is a new subject
    assert ids == ["competitor-battlecard", "price-objection", "competitor-battlecard",
                   "recording-disclosure", "long-silence", "long-monologue", "long-silence",
                   "talk-ratio"]
    at = dict(zip(ids, [t for _, t in fired]))          # the later of repeated ids
    assert 5_000 < fired[0][1] <= 9_000 and prompts[0].title == "Competitor: Gong"
    assert prompts[0].link == "https://battlecards.example/gong"
    assert 14_000 < at["price-objection"] <= 19_000
    assert prompts[2].title == "Competitor: Chorus"
    assert at["recording-disclosure"] == 30_000                 # deadline 30 s, no disclosure
    assert at["long-monologue"] == 40_000 + 5_500 * 11 + 5_000  # first segment past 60 s of turn
    assert "66 s" in prompts[5].body                            # 65.5 s of turn
    assert fired[4] == ("long-silence", 33_000)                 # speech stopped at 23 s
    assert at["long-silence"] == 120_000                        # ... and again at 110 s
    assert at["talk-ratio"] == 128_000                          # first segment after 120 s
    summary = coach.finish(140_000)
    assert summary.checklist_missed == ("recording-disclosure",)
    assert summary.competitors == ("Gong", "Chorus")
    assert [o.keyword for o in summary.objections] == ["too expensive"]
    assert [(s.text, s.due) for s in summary.next_steps] == [
        ("Let's meet next Tuesday at 10 am.", "next tuesday")]
    assert summary.signals["next_step_agreed"] and summary.signals["competitors"] == ["Gong", "Chorus"]
    assert summary.duration_ms == 140_000


def test_disclosure_in_time_means_no_compliance_prompt():
    lines = [("rep", 0, 6_000, "Hi, this is Sam. Just so you know this call is being recorded.")]
    coach = CallCoach()
    prompts = [x for x in run_call(coach, lines, end_ms=40_000) if isinstance(x, CoachingPrompt)]
    assert "recording-disclosure" not in [p.rule_id for p in prompts]


def test_prompt_budget_per_minute_holds_back_non_critical_prompts():
    rule_set = load_rule_set({"options": {"max_prompts_per_minute": 2}})
    coach = CallCoach(rule_set)
    lines = [("customer", 1_000 * i, 1_000 * i + 900, f"We looked at {name}.")
             for i, name in enumerate(["Gong", "Chorus", "HubSpot", "Outreach"], start=1)]
    lines.append(("rep", 6_000, 8_000, "I guarantee it works."))   # critical: not held back
    prompts = [x for x in run_call(coach, lines, end_ms=9_000) if isinstance(x, CoachingPrompt)]
    assert [p.title for p in prompts] == ["Competitor: Gong", "Competitor: Chorus", "Avoid promises"]


def test_customer_sentiment_drop_prompts_once_within_cooldown():
    coach = CallCoach()
    lines = [("customer", 0, 3_000, "This looks great, I love the dashboard, really impressive!"),
             ("customer", 4_000, 8_000, "Hmm, but the setup is terrible and support sounds awful."),
             ("customer", 9_000, 13_000, "Honestly I hate this, it is a horrible waste of money."),
             ("customer", 14_000, 18_000, "This is bad, really bad, and I am angry about it.")]
    out = run_call(coach, lines, end_ms=20_000)
    drops = [x for x in out if isinstance(x, CoachingPrompt) and x.rule_id == "customer-sentiment-drop"]
    assert len(drops) == 1 and drops[0].party == "customer"
    scores = [x for x in out if isinstance(x, SentimentScore)]
    assert scores[0].label == "positive" and scores[-1].label == "negative"
    assert scores[-1].trend < 0 < scores[0].trend


def test_insights_of_one_final_segment():
    coach = CallCoach()
    out = coach.feed(SegmentInput.build("s1", "customer", "We already use Salesforce.", 0, 2_000))
    kinds = [type(x) for x in out]
    assert kinds[:2] == [KeywordHit, KeywordHit]
    assert SentimentScore in kinds and TalkMetrics in kinds and CoachingPrompt in kinds
    event_type, payload = as_event(out[0])
    assert event_type == "insight.keyword" and payload["party"] == "customer"
    assert as_event(next(x for x in out if isinstance(x, CoachingPrompt)))[0] == "coaching.prompt"


def test_a_partial_prompts_early_and_the_final_does_not_prompt_again():
    coach = CallCoach()
    partial = SegmentInput.build("s1", "customer", "We use Gong", 0, 1_000, is_final=False)
    final = SegmentInput.build("s1", "customer", "We use Gong, it's fine.", 0, 2_000)
    early = coach.feed(partial)
    assert [type(x) for x in early] == [CoachingPrompt] and early[0].title == "Competitor: Gong"
    assert coach.feed(partial) == []                       # same partial again: cooldown
    later = coach.feed(final)
    assert [x.keyword for x in later if isinstance(x, KeywordHit)] == ["Gong"]
    assert not any(isinstance(x, CoachingPrompt) for x in later)
    assert coach.feed(final) == []                         # a redelivered final gives nothing


def test_partials_can_be_ignored():
    coach = CallCoach(prompts_on_partials=False)
    assert coach.feed(SegmentInput.build("s1", "customer", "We use Gong", 0, 1_000,
                                         is_final=False)) == []


def test_segments_from_mappings_and_transcript_like_objects():
    coach = CallCoach()
    payload = {"segment_key": "k1", "party": "customer", "text": "too expensive", "start_ms": 0,
               "end_ms": 900, "words": [{"text": "too", "start_ms": 0, "end_ms": 400},
                                        {"text": "expensive", "start_ms": 400, "end_ms": 900}]}
    hits = [x for x in coach.feed(payload) if isinstance(x, KeywordHit)]
    assert (hits[0].start_ms, hits[0].end_ms) == (0, 900)
    party = SimpleNamespace(value="rep")           # like media's Party enum
    word = SimpleNamespace(text="guarantee", start_ms=1_000, end_ms=1_500, probability=0.9)
    seg = SimpleNamespace(segment_id="k2", party=party, text="guarantee", start_ms=1_000,
                          end_ms=1_500, words=[word], is_final=True, revision=0)
    assert any(isinstance(x, CoachingPrompt) and x.rule_id == "compliance-risk"
               for x in coach.feed(seg))


@pytest.mark.parametrize("bad, message", [
    ({"segment_id": "x", "party": "manager", "start_ms": 0, "end_ms": 1}, "party must be one of"),
    ({"segment_id": "x", "party": "rep", "start_ms": 5, "end_ms": 1}, "before start_ms"),
    ({"segment_id": "x", "party": "rep", "start_ms": -1, "end_ms": 1}, "start_ms must be"),
    ({"segment_id": "x", "party": "rep", "start_ms": "soon", "end_ms": 1}, "start_ms must be"),
    ({"segment_id": "x", "party": "rep", "end_ms": 1}, "missing field 'start_ms'"),
    ({"segment_id": "x", "party": "rep", "start_ms": 0, "end_ms": 1, "words": [("a",)]},
     "word must be"),
    ("not a segment", "not a transcript segment"),
    ({"segment_id": "x", "party": "rep", "start_ms": 0, "end_ms": 1, "text": None},
     "text must be a string"),
])
def test_bad_segments_are_rejected_clearly_and_the_call_goes_on(bad, message):
    coach = CallCoach()
    with pytest.raises(SegmentError, match=message):
        coach.feed(bad)
    assert coach.feed(SegmentInput.build("ok", "rep", "hello there", 0, 500))


def test_finish_is_final_and_idempotent():
    coach = CallCoach()
    coach.feed(SegmentInput.build("s1", "rep", "I'll send you the proposal by Friday.", 0, 3_000))
    summary = coach.finish(10_000)
    assert isinstance(summary, CallSummary) and coach.finish() is summary
    assert [(a.owner, a.due) for a in summary.action_items] == [("rep", "by friday")]
    assert coach.tick(20_000) == []
    with pytest.raises(CallCoachError):
        coach.feed(SegmentInput.build("s2", "rep", "hello", 11_000, 12_000))


def test_an_empty_call_still_has_a_summary():
    summary = CallCoach().finish(5_000)
    assert summary.metrics is None and summary.action_items == ()
    assert "No next step" in summary.text


def test_every_insight_and_the_summary_serialise_to_json():
    import json

    coach = CallCoach()
    out = coach.feed(SegmentInput.build("s1", "customer", "We use Gong, too expensive.", 0, 2_000))
    out += coach.tick(40_000)
    for record in [*out, coach.finish(41_000)]:
        _event_type, payload = as_event(record)
        assert json.loads(json.dumps(payload)) == payload
    assert as_event(coach.finish())[0] == "insight.summary"
    with pytest.raises(TypeError):
        as_event("not a record")


def test_competitors_are_spotted_in_unbiased_text_not_fed_to_the_transcriber():
    """Biased decoding of real speech heard competitors nobody named (scripts/bench/competitors.py),
    so by default no keyword is a hot word; an organization may still opt in per category."""
    from coaching import CoachingProfile

    assert CoachingProfile().hotwords == ""
    opted_in = {"keywords": {"competitor": {"hotword": True, "phrases": ["Gong"]}}}
    assert CoachingProfile.load(opted_in).hotwords == "Gong"


def test_a_silence_gets_one_prompt_even_when_a_late_final_moves_its_start():
    """Finals lag the audio: a final that lands during the silence must not start a second prompt."""
    coach = CallCoach()
    coach.feed(SegmentInput.build("a", "rep", "Thanks for taking the call today.", 0, 2_000))
    prompts = []
    for now in range(3_000, 12_001, 1_000):
        prompts += [p for p in coach.tick(now) if p.rule_id == "long-silence"]
    assert [p.at_ms for p in prompts] == [12_000]
    # The customer's last words (ended at 2.5 s) were still being decoded; they arrive now.
    coach.feed(SegmentInput.build("b", "customer", "Sure.", 2_000, 2_500))
    for now in range(13_000, 20_001, 1_000):
        prompts += [p for p in coach.tick(now) if p.rule_id == "long-silence"]
    assert [p.at_ms for p in prompts] == [12_000]
    # Speech after the prompt opens a new stretch, which may prompt again.
    coach.feed(SegmentInput.build("c", "rep", "Are you still there?", 80_000, 81_000))
    for now in range(82_000, 92_001, 1_000):
        prompts += [p for p in coach.tick(now) if p.rule_id == "long-silence"]
    assert [p.at_ms for p in prompts] == [12_000, 91_000]


def test_no_silence_prompt_while_speech_is_still_being_transcribed():
    coach = CallCoach()
    coach.feed(SegmentInput.build("a", "rep", "Let me explain how it works.", 0, 2_000))
    busy = [p for now in range(3_000, 30_001, 1_000)
            for p in coach.tick(now, speech_active=True) if p.rule_id == "long-silence"]
    assert busy == []
    assert [p.at_ms for p in coach.tick(31_000) if p.rule_id == "long-silence"] == [31_000]
