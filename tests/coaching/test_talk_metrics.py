"""Talk metrics against values computed by hand from the definitions in talk_metrics.py."""

import random

from coaching import CallCoach, SegmentInput, load_rule_set
from coaching.talk_metrics import TalkTracker
from coaching.tokens import normalise

# (party, start_ms, end_ms, text); comments give what each line contributes
SCRIPT = [
    ("rep", 0, 10_000, "Um, so we help sales teams coach their reps."),          # 9 words, um
    ("rep", 11_000, 20_000, "Uh, the platform listens to both sides of every call."),  # 10, uh; same turn
    ("customer", 19_000, 19_600, "Right."),                                       # backchannel
    ("customer", 22_000, 30_000,
     "We already use a tool for that and I would like to know the price."),     # 15; "would like"
    ("rep", 28_000, 35_000, "Sorry to jump in, you know, it is cheaper than you think."),  # 12, interrupts
    ("customer", 40_000, 50_000, "Okay, I see what you mean, kind of."),        # 8, kind of
    ("rep", 52_000, 60_000, "Great, let us book a demo for Tuesday."),          # 8, patience 2 s
]


def feed(tracker, script):
    for i, (party, start, end, text) in enumerate(script):
        tracker.add(SegmentInput.build(f"s{i}", party, text, start, end), normalise(text).split())


def expected_checks(m):
    assert m.rep_talk_ms == 10_000 + 9_000 + 7_000 + 8_000
    assert m.customer_talk_ms == 600 + 8_000 + 10_000
    assert m.talk_ratio == round(34_000 / 52_600, 4)
    assert (m.longest_monologue_ms, m.longest_monologue_party) == (20_000, "rep")
    assert (m.rep_longest_monologue_ms, m.customer_longest_monologue_ms) == (20_000, 10_000)
    assert (m.rep_interruptions, m.customer_interruptions) == (1, 0)
    assert m.rep_wpm == round(39 * 60_000 / 34_000, 1)
    assert m.customer_wpm == round(24 * 60_000 / 18_600, 1)
    assert (m.rep_fillers, m.customer_fillers) == (3, 1)
    assert m.filler_counts == {"kind of": 1, "uh": 1, "um": 1, "you know": 1}
    assert (m.silence_ms, m.longest_silence_ms) == (1_000 + 2_000 + 5_000 + 2_000, 5_000)
    assert m.patience_ms == 2_000
    assert (m.rep_turns, m.customer_turns) == (3, 2)


def test_live_metrics_match_hand_computed_values():
    tracker = TalkTracker(load_rule_set().fillers)
    feed(tracker, SCRIPT)
    m = tracker.snapshot()
    expected_checks(m)
    assert (m.current_monologue_ms, m.current_monologue_party) == (8_000, "rep")


def test_final_metrics_do_not_depend_on_arrival_order():
    tracker = TalkTracker(load_rule_set().fillers)
    shuffled = SCRIPT[:]
    random.Random(7).shuffle(shuffled)
    feed(tracker, shuffled)
    expected_checks(tracker.final())


def test_call_coach_reports_the_same_metrics():
    coach = CallCoach()
    for i, (party, start, end, text) in enumerate(SCRIPT):
        coach.feed(SegmentInput.build(f"s{i}", party, text, start, end))
    expected_checks(coach.metrics())
    expected_checks(coach.finish(60_000).metrics)


def test_filler_context_rules():
    tracker = TalkTracker(load_rule_set().fillers)
    count = lambda text: tracker.count_fillers(normalise(text).split())
    assert count("I'd like a demo, it looks like what we need") == []
    assert count("the onboarding took like three weeks") == ["like"]
    assert count("what kind of plan do you know the price") == []
    assert count("it's kind of slow, you know") == ["kind of", "you know"]
    assert count("um uh er") == ["um", "uh", "er"]


def test_empty_call_has_zero_metrics():
    m = TalkTracker().snapshot()
    assert (m.talk_ratio, m.rep_wpm, m.longest_monologue_ms, m.patience_ms) == (0.0, 0.0, 0, 0.0)


def test_each_party_keeps_its_own_longest_monologue():
    """A customer's longer turn must not wipe out the rep's longest one (it used to read 0)."""
    script = [("rep", 0, 6_000, "Thanks for taking the call, I wanted to walk you through it."),
              ("customer", 7_000, 25_000, "Sure, our team has a long list of questions for you.")]
    tracker = TalkTracker(load_rule_set().fillers)
    feed(tracker, script)
    for m in (tracker.snapshot(), tracker.final()):
        assert (m.rep_longest_monologue_ms, m.customer_longest_monologue_ms) == (6_000, 18_000)
        assert (m.longest_monologue_ms, m.longest_monologue_party) == (18_000, "customer")
