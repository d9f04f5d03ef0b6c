"""The call's checklist: each checklist rule pending, ticked when heard, missed past its deadline."""

import pytest

from coaching import CallCoach, SegmentInput, load_rule_set
from coaching.checklist import ChecklistTracker, checklist_state, item_label
from coaching.records import ChecklistState, as_event
from coaching.rule_set import RuleSetError


def statuses(state):
    return {item.id: item.status for item in state.items}


def test_items_are_pending_then_missed_at_their_deadline_unless_heard():
    rules = load_rule_set()
    state = checklist_state(rules, {}, 29_999)
    assert statuses(state) == {"recording-disclosure": "pending", "next-step-agreed": "pending"}
    assert [i.label for i in state.items] == ["Recording disclosure", "Next step agreed"]
    assert [i.due_ms for i in state.items] == [30_000, 900_000]
    assert statuses(checklist_state(rules, {}, 30_000))["recording-disclosure"] == "missed"
    # heard late is still done; the time it was heard is kept
    late = checklist_state(rules, {"recording-disclosure": 41_000}, 60_000)
    assert statuses(late)["recording-disclosure"] == "done"
    assert late.items[0].done_at_ms == 41_000 and late.done == 1
    # deadlines count from the call's start
    assert (
        statuses(checklist_state(rules, {}, 35_000, call_start_ms=10_000))["recording-disclosure"]
        == "pending"
    )


def test_labels_come_from_the_rule_or_its_category():
    rules = load_rule_set(
        {
            "rules": [
                {
                    "id": "budget-asked",
                    "trigger": "checklist",
                    "category": "budget",
                    "by_s": 300,
                    "title": "Ask about budget",
                    "body": "Ask what they have set aside.",
                },
                {
                    "id": "price-said",
                    "label": "  Price named ",
                    "trigger": "checklist",
                    "category": "pricing",
                    "by_s": 300,
                    "title": "t",
                    "body": "b",
                },
            ]
        }
    )
    labels = {r.id: item_label(r) for r in rules.rules if r.trigger == "checklist"}
    assert labels["budget-asked"] == "Budget" and labels["price-said"] == "Price named"
    with pytest.raises(RuleSetError, match=r"label: must be a non-empty string"):
        load_rule_set(
            {
                "rules": [
                    {
                        "id": "x",
                        "label": " ",
                        "trigger": "checklist",
                        "category": "budget",
                        "by_s": 1,
                        "title": "t",
                        "body": "b",
                    }
                ]
            }
        )


def test_the_tracker_reports_each_change_once():
    tracker = ChecklistTracker(load_rule_set())
    first = tracker.update({}, 1_000)
    assert first is not None and statuses(first)["recording-disclosure"] == "pending"
    assert tracker.update({}, 2_000) is None  # nothing changed
    assert statuses(tracker.update({}, 30_000))["recording-disclosure"] == "missed"
    assert tracker.update({}, 31_000) is None
    assert (
        statuses(tracker.update({"next-step-agreed": 31_500}, 32_000))["next-step-agreed"] == "done"
    )
    assert ChecklistTracker(
        load_rule_set({"disable_rules": ["recording-disclosure", "next-step-agreed"]})
    ).empty


def test_the_coach_ticks_the_checklist_as_the_rep_says_each_item():
    coach = CallCoach(load_rule_set())
    out = coach.feed(SegmentInput.build("a", "rep", "Hi, this is Sam from Coachline.", 0, 2_000))
    initial = [x for x in out if isinstance(x, ChecklistState)]
    assert len(initial) == 1 and statuses(initial[0]) == {
        "recording-disclosure": "pending",
        "next-step-agreed": "pending",
    }
    # the customer saying it does not count for a rep's item (the rule names the rep)
    out = coach.feed(
        SegmentInput.build("b", "customer", "Is this call being recorded?", 3_000, 5_000)
    )
    assert not [x for x in out if isinstance(x, ChecklistState)]
    out = coach.feed(
        SegmentInput.build("c", "rep", "Yes, this call is being recorded.", 6_000, 8_000)
    )
    ticked = [x for x in out if isinstance(x, ChecklistState)]
    assert len(ticked) == 1 and statuses(ticked[0])["recording-disclosure"] == "done"
    assert 6_000 < ticked[0].items[0].done_at_ms <= 8_000  # when the phrase ended
    assert as_event(ticked[0])[0] == "insight.checklist"
    # a partial never ticks an item: only what was finally heard counts
    coach.feed(SegmentInput.build("d", "rep", "so the next step", 9_000, 10_000, is_final=False))
    assert coach.checklist().items[1].status == "pending"
    # time passes: nothing changes until the next step's deadline
    assert coach.checklist_changes(100_000) is None
    assert statuses(coach.checklist_changes(900_000))["next-step-agreed"] == "missed"
    summary = coach.finish(901_000)
    assert summary.checklist_missed == ("next-step-agreed",)
    assert coach.checklist_changes(950_000) is None  # finished: nothing more
