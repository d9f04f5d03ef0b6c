"""Rule engine details: templates, cooldown subjects, checklist, silence stretches."""

from coaching import KeywordHit, load_rule_set
from coaching.rules import RuleEngine, render


def hit(keyword, at_ms, party="customer", category="competitor"):
    return KeywordHit("s", party, category, keyword, keyword, at_ms - 300, at_ms, 0, 1, "exact",
                      1.0)


def test_templates_fill_known_fields_and_survive_bad_ones():
    assert render("{keyword} at {value:.0f} s", {"keyword": "Gong", "value": 12.4}) == "Gong at 12 s"
    assert render("{missing} stays", {}) == "{missing} stays"
    assert render("{value:.0f}", {"value": "not a number"}) == "{value:.0f}"


def test_cooldown_is_per_rule_and_subject():
    engine = RuleEngine(load_rule_set())
    fired = []
    for keyword, at in [("Gong", 1_000), ("gong", 2_000), ("Chorus", 3_000), ("Gong", 301_000)]:
        fired += [(p.title, p.at_ms) for p in engine.on_keywords([hit(keyword, at)])]
    assert fired == [("Competitor: Gong", 1_000), ("Competitor: Chorus", 3_000),
                     ("Competitor: Gong", 301_000)]


def test_checklist_item_done_by_the_right_party_only():
    engine = RuleEngine(load_rule_set(), call_start_ms=0)
    disclosure = hit("this call is recorded", 5_000, party="customer",
                     category="compliance_disclosure")
    engine.on_keywords([disclosure])                  # the customer saying it does not count
    assert [p.rule_id for p in engine.on_tick(30_000, 29_000)] == ["recording-disclosure"]
    assert engine.on_tick(31_000, 30_500) == []       # said once
    engine2 = RuleEngine(load_rule_set(), call_start_ms=0)
    engine2.on_keywords([hit("this call is recorded", 5_000, party="rep",
                             category="compliance_disclosure")])
    assert engine2.on_tick(30_000, 29_000) == []
    assert "recording-disclosure" not in engine2.missed_checklist()


def test_silence_prompts_once_per_stretch_and_not_before_speech():
    engine = RuleEngine(load_rule_set({"disable_rules": ["recording-disclosure",
                                                         "next-step-agreed"]}))
    assert engine.on_tick(50_000, None) == []
    fired = [p.at_ms for t in range(0, 30_001, 1_000) for p in engine.on_tick(t, 0)]
    assert fired == [10_000]
