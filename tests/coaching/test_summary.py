"""The post-call summary's action items, next steps, objections and signals."""

from coaching import CallCoach, SegmentInput
from coaching.summary import Utterance, extract_actions


def items(lines):
    utterances = [Utterance(f"s{i}", party, text, i * 10_000, i * 10_000 + 5_000)
                  for i, (party, text) in enumerate(lines)]
    actions, steps = extract_actions(utterances)
    return [(a.owner, a.text, a.due) for a in actions], [(s.text, s.due) for s in steps]


def test_commitments_requests_and_scheduling():
    actions, steps = items([
        ("rep", "Great. I'll send you the pricing sheet tomorrow."),
        ("customer", "Okay, I will talk to my CFO this week. Can you share the case study?"),
        ("rep", "Sure. We'll put together a pilot plan. Let's meet Thursday at 2 pm to review it."),
        ("customer", "The weather is nice today."),
    ])
    assert actions == [
        ("rep", "I'll send you the pricing sheet tomorrow.", "tomorrow"),
        ("customer", "I will talk to my CFO this week.", "this week"),
        ("rep", "Can you share the case study?", None),
        ("both", "We'll put together a pilot plan.", None),
    ]
    assert steps == [("Let's meet Thursday at 2 pm to review it.", "thursday")]


def test_summary_of_a_call_is_built_from_redacted_text():
    coach = CallCoach()
    lines = [
        ("rep", 0, 5_000, "Hi, this call is being recorded for quality."),
        ("customer", 6_000, 12_000, "We already use HubSpot and the budget is tight."),
        ("customer", 13_000, 18_000, "Can you email me at jane.doe@acme.com? It's too expensive."),
        ("rep", 19_000, 25_000, ("I'll email you the ROI study today. Let's set up a call next "
                                 "week to go through it, what's the next step on your side?")),
    ]
    for i, (party, start, end, text) in enumerate(lines):
        coach.feed(SegmentInput.build(f"s{i}", party, text, start, end))
    summary = coach.finish(30_000)
    assert "jane.doe" not in summary.text + " ".join(summary.key_points) + \
        " ".join(a.text for a in summary.action_items)
    assert any("[EMAIL]" in a.text for a in summary.action_items)
    assert [o.category for o in summary.objections] == ["objection_incumbent", "objection_price"]
    assert summary.objections[1].text == "It's too expensive."
    assert summary.competitors == ("HubSpot",)
    assert summary.signals["budget_discussed"] and summary.signals["next_step_agreed"]
    assert summary.keyword_counts["competitor"] == 1
    assert summary.checklist_missed == ()
    assert "Competitors mentioned: HubSpot." in summary.text
    assert "0 min 30 s call." in summary.text
    assert set(summary.sentiment_trend) == {"rep", "customer"}
