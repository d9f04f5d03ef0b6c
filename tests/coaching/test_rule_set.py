"""Rule sets: shipped defaults, org overrides, and errors that name the bad value."""

import json

import pytest

from coaching import CoachingProfile, RuleSetError, default_rule_set, load_rule_set


def test_defaults_load_with_every_trigger_kind():
    rule_set = default_rule_set()
    assert rule_set.name == "default"
    assert {r.trigger for r in rule_set.rules} == {"keyword", "metric", "sentiment", "silence",
                                                   "checklist"}
    assert rule_set.category("competitor").fuzzy
    assert all(r.cooldown_s > 0 for r in rule_set.rules)


def test_org_override_replaces_adds_and_disables(tmp_path):
    path = tmp_path / "acme.json"
    path.write_text(json.dumps({
        "name": "acme",
        "options": {"max_prompts_per_minute": 2},
        "keywords": {"compliance_risk": None,
                     "competitor": {"phrases": ["Zylo"], "fuzzy": True}},
        "disable_rules": ["compliance-risk", "talk-ratio"],
        "rules": [{"id": "long-monologue", "trigger": "metric", "metric": "current_monologue_s",
                   "value": 45, "party": "rep", "title": "Pause", "body": "Ask a question."},
                  {"id": "budget", "trigger": "keyword", "category": "budget",
                   "title": "Budget", "body": "Ask who signs off."}],
    }))
    rule_set = load_rule_set(path)
    ids = [r.id for r in rule_set.rules]
    assert rule_set.name == "acme" and rule_set.option("max_prompts_per_minute") == 2
    assert "compliance-risk" not in ids and "talk-ratio" not in ids and "budget" in ids
    assert next(r for r in rule_set.rules if r.id == "long-monologue").value == 45
    assert rule_set.category("compliance_risk") is None
    assert [p.text for p in rule_set.category("competitor").phrases] == ["Zylo"]
    assert rule_set.option("fuzzy_threshold") == 86           # untouched defaults remain
    assert CoachingProfile.load(path).rule_set == rule_set


def test_a_standalone_rule_set_need_not_extend_the_defaults():
    rule_set = load_rule_set({"extends": False, "keywords": {"x": {"phrases": ["foo"]}}})
    assert rule_set.rules == () and [c.name for c in rule_set.keywords] == ["x"]


@pytest.mark.parametrize("override, message", [
    ({"rules": [{"id": "r", "trigger": "psychic", "title": "t", "body": "b"}]},
     "rules[11] (r).trigger: 'psychic' is not one of"),
    ({"rules": [{"id": "r", "trigger": "metric", "metric": "happiness", "value": 1,
                 "title": "t", "body": "b"}]}, "rules[11] (r).metric: 'happiness'"),
    ({"rules": [{"id": "r", "trigger": "keyword", "category": "nope", "title": "t",
                 "body": "b"}]}, "rules[11] (r).category: 'nope' is not a keyword category"),
    ({"rules": [{"id": "r", "trigger": "metric", "metric": "talk_ratio", "title": "t",
                 "body": "b"}]}, "needs a threshold value"),
    ({"rules": [{"id": "r", "trigger": "silence", "seconds": "ten", "title": "t",
                 "body": "b"}]}, "rules[11] (r).seconds: must be a number"),
    ({"rules": [{"id": "r", "trigger": "silence", "seconds": 5, "title": "t", "body": "b",
                 "severity": "apocalyptic"}]}, "severity: 'apocalyptic'"),
    ({"rules": [{"trigger": "silence", "seconds": 5, "title": "t", "body": "b"}]},
     "rules[11].id: must be a non-empty string"),
    ({"keywords": {"competitor": {"phrases": []}}}, "keywords.competitor.phrases: must not be empty"),
    ({"keywords": {"competitor": {"phrases": [3]}}}, "keywords.competitor.phrases[0]: must be an object"),
    ({"keywords": {"competitor": {"phrases": ["x"], "parties": ["manager"]}}},
     "keywords.competitor.parties: 'manager'"),
    ({"keywords": {"competitor": {"phrases": ["x"], "fuzy": True}}}, "unknown field(s) ['fuzy']"),
    ({"options": {"fuzzy_threshold": 400}}, "options.fuzzy_threshold"),
    ({"options": {"speed": 1}}, "options.speed: unknown option"),
    ({"disable_rules": ["no-such-rule"]}, "disable_rules: no such rule(s) ['no-such-rule']"),
    ({"colour": "blue"}, "unknown rule set field(s): ['colour']"),
    ("{not json", "rule set is not valid JSON"),
    ("[1, 2]", "rule set must be a JSON object"),
])
def test_bad_rule_sets_are_rejected_with_the_path_of_the_problem(override, message):
    with pytest.raises(RuleSetError) as caught:
        load_rule_set(override)
    assert message in str(caught.value)


def test_removing_a_category_a_rule_needs_is_caught():
    with pytest.raises(RuleSetError, match="category: 'competitor' is not a keyword category"):
        load_rule_set({"keywords": {"competitor": None}})


def test_missing_file_is_a_rule_set_error(tmp_path):
    with pytest.raises(RuleSetError, match="cannot read rule set file"):
        load_rule_set(tmp_path / "missing.json")
