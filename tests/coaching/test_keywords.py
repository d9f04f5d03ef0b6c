"""Keyword and phrase spotting on realistic ASR output."""

import pytest

from coaching.keywords import KeywordMatcher, hotwords
from coaching.records import SegmentInput
from coaching.rule_set import default_rule_set, load_rule_set


@pytest.fixture(scope="module")
def matcher():
    return KeywordMatcher(default_rule_set())


def hits(matcher, text, party="customer", words=()):
    seg = SegmentInput.build("s1", party, text, 10_000, 14_000, words)
    return [(h.category, h.keyword, h.matched_text, h.method) for h in matcher.match(seg)]


@pytest.mark.parametrize("heard, keyword", [
    ("We use Salesforce today.", "Salesforce"),
    ("we use sales force today", "Salesforce"),          # split by the ASR
    ("we use salesforse today", "Salesforce"),           # misspelt
    ("our team is on hub spot", "HubSpot"),
    ("we tried hubspott last year", "HubSpot"),
    ("we looked at corus", "Chorus"),
    ("we looked at Chorus.ai", "Chorus"),
    ("they moved to sales loft", "Salesloft"),
    ("we have ring central for phones", "RingCentral"),
    ("we're evaluating Gong's product", "Gong"),
    ("we tried ring centrall", "RingCentral"),
    ("our reps use out reech", "Outreach"),
])
def test_competitor_names_survive_asr_misspellings(matcher, heard, keyword):
    found = [h for h in hits(matcher, heard) if h[0] == "competitor"]
    assert [h[1] for h in found] == [keyword]


@pytest.mark.parametrize("heard, keyword, matched", [
    ("we switched to dial pat", "Dialpad", "dial pat"),    # too far for spelling, same sound
    ("we use air cole for the phones", "Aircall", "air cole"),
])
def test_names_that_sound_alike_match_phonetically(matcher, heard, keyword, matched):
    assert [h[1:] for h in hits(matcher, heard) if h[0] == "competitor"] == [
        (keyword, matched, "phonetic")]


@pytest.mark.parametrize("heard", [
    "I'm going to check that, of course.",
    "Gone are the days of cold calls, it's a course on sales.",
    "the course was fine and the gang was all there",
    "we'll drive out to the office",
])
def test_ordinary_words_are_not_competitors(matcher, heard):
    assert [h for h in hits(matcher, heard) if h[0] == "competitor"] == []


def test_objections_and_stemmed_words(matcher):
    found = hits(matcher, "Honestly it's too expensive, we already use a tool, and the prices went up.")
    assert ("objection_price", "too expensive", "too expensive", "exact") in found
    assert ("objection_incumbent", "already use", "already use", "exact") in found
    assert ("pricing", "price", "prices", "stem") in found


def test_curly_apostrophes_and_case_are_normalised(matcher):
    found = hits(matcher, "We CAN’T AFFORD it. Send me an e-mail... no: SEND ME AN EMAIL.")
    assert ("objection_price", "can't afford", "CAN’T AFFORD", "exact") in found
    assert any(h[1] == "send me an email" for h in found)


def test_hit_carries_party_time_and_words_from_word_timings(matcher):
    words = [("we", 10_000, 10_200), ("already", 10_200, 10_600), ("use", 10_600, 10_900),
             ("Gong.", 11_000, 11_500)]
    seg = SegmentInput.build("seg-9", "customer", "we already use Gong.", 10_000, 11_500, words)
    found = {h.category: h for h in KeywordMatcher(default_rule_set()).match(seg)}
    gong = found["competitor"]
    assert (gong.party, gong.segment_id, gong.start_ms, gong.end_ms) == ("customer", "seg-9", 11_000, 11_500)
    assert gong.matched_text == "Gong" and (gong.word_start, gong.word_end) == (3, 4)
    assert gong.link == "https://battlecards.example/gong"
    incumbent = found["objection_incumbent"]
    assert (incumbent.start_ms, incumbent.end_ms, incumbent.matched_text) == (10_200, 10_900, "already use")


def test_category_party_filter(matcher):
    text = "Just so you know, this call is being recorded."
    assert any(h[0] == "compliance_disclosure" for h in hits(matcher, text, party="rep"))
    assert not any(h[0] == "compliance_disclosure" for h in hits(matcher, text, party="customer"))


def test_org_keywords_override_and_hotwords():
    rule_set = load_rule_set({"keywords": {"competitor": {
        "fuzzy": True, "phonetic": True, "hotword": True,
        "phrases": ["Acme Dialer", {"phrase": "Zylo", "aliases": ["Zylo Cloud"]}]}}})
    m = KeywordMatcher(rule_set)
    assert [h[1] for h in hits(m, "we run acme dialler")] == ["Acme Dialer"]
    assert hits(m, "we use salesforce") == []
    assert hotwords(rule_set) == "Acme Dialer, Zylo, Zylo Cloud"
    assert len(hotwords(default_rule_set(), max_chars=30)) <= 30
