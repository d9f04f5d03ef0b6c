"""The live event contract: every record survives record → bus payload → record, on the wire's keys."""

from __future__ import annotations

import json

import pytest

from crm_core.calls import live_events as ev

METRICS = ev.MetricsEvent(
    at_ms=9000, talk_ratio=ev.PartyPair(0.6, 0.4), talk_ms=ev.PartyPair(5400, 3600),
    longest_monologue_ms=ev.PartyPair(3000, 0), current_monologue_party="rep",
    current_monologue_ms=1200, interruptions=ev.PartyPair(1, 0), wpm=ev.PartyPair(151.5, 120.0),
    fillers=ev.PartyPair(2, 1), silence_ms=800, longest_silence_ms=500, patience_ms=640.5,
)

RECORDS = [
    ev.CallStartedEvent("twilio", "inbound", rep_id="r1", lead_id=None),
    ev.CallEndedEvent(abnormal=True, reason="carrier hung up", samples={"rep": 8000}),
    ev.CallDtmfEvent("5", 1200, 80),
    ev.CallHoldEvent(True),
    ev.TranscriptEvent(
        segment_id="3", party="customer", speaker="customer", start_ms=4000, end_ms=5900,
        text="my card is [redacted]", revision=2, is_final=True, stable_words=4,
        words=(ev.TranscriptWord("my", 4000, 4200, 0.91),
               ev.TranscriptWord("[redacted]", 4300, 4600, 0.8)),
        redacted=("card_number",), text_raw="my card is 4111"),
    ev.TranscriptEvent(segment_id="4", party="mixed", speaker="speaker_1", start_ms=0, end_ms=10,
                       text="hel", is_final=False),
    ev.TranscriptRetractedEvent("5", "rep"),
    ev.KeywordEvent("3", "customer", "competitor", "conference", "Conference", 5000, 5280, 3, 4,
                    "exact", 1.0, link=None),
    ev.SentimentEvent("3", "customer", -0.4, "negative", -0.2, 5900, "lexicon-v1"),
    METRICS,
    ev.PromptEvent("competitor-battlecard", "keyword", "warning", "Competitor", "Say why",
                   5280, party="customer", evidence=("conference",), link="https://x.test",
                   id="competitor-battlecard@5280", segment_key="customer:3"),
    ev.PromptEvent("long-silence", "silence", "info", "Silence", "", 9000,
                   id="long-silence@9000"),
    ev.SummaryEvent(
        text="A short call.", key_points=("price",),
        action_items=(ev.SummaryActionItem("rep", "send the quote", 7000, due="friday"),),
        next_steps=(ev.SummaryActionItem("both", "meet again", 8000),),
        objections=(ev.SummaryObjection("objection-price", "too expensive", "It is too "
                                        "expensive.", 6000),),
        competitors=("conference",), keyword_counts={"competitor": 1}, metrics=METRICS,
        sentiment_trend={"customer": ((5900, -0.2), (8000, 0.1))},
        checklist_missed=("recording-disclosure",), duration_ms=9000,
        signals={"competitors": ["conference"], "talk_ratio": 0.6, "pricing_discussed": True},
        abnormal=False),
    ev.SummaryEvent(text="", metrics=None),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_a_record_survives_the_bus_unchanged(record):
    payload = record.to_payload()
    wire = json.loads(json.dumps({"call_id": "c1", **payload}))  # as the bus carries it
    assert wire == {"call_id": "c1", **payload}
    assert ev.from_bus(record.event_type, wire) == record


def test_transcript_event_types_follow_finality_and_the_crm_keys_lines_by_party():
    final, partial = RECORDS[4], RECORDS[5]
    assert (final.event_type, partial.event_type) == (ev.TRANSCRIPT_FINAL, ev.TRANSCRIPT_PARTIAL)
    assert final.segment_key == "customer:3"


def test_optional_transcript_keys_are_on_the_wire_only_when_set():
    payload = RECORDS[5].to_payload()
    assert "text_raw" not in payload and "sentiment" not in payload
    assert set(payload) == {"segment_id", "party", "speaker", "start_ms", "end_ms", "text",
                            "revision", "is_final", "stable_words", "words", "redacted"}


def test_the_wire_keys_of_prompts_metrics_and_call_ends():
    assert set(RECORDS[10].to_payload()) == {"prompt"}
    assert list(RECORDS[10].to_payload()["prompt"]) == [
        "rule_id", "kind", "severity", "title", "body", "at_ms", "party", "evidence", "link",
        "id", "segment_key"]
    assert METRICS.to_payload()["current_monologue"] == {"party": "rep", "ms": 1200}
    assert METRICS.to_payload()["talk_ratio"] == {"rep": 0.6, "customer": 0.4}
    assert RECORDS[1].to_payload() == {"abnormal": True, "reason": "carrier hung up",
                                       "samples": {"rep": 8000}}


def test_a_minimal_final_from_another_producer_reads_with_defaults():
    segment = ev.TranscriptEvent.from_payload({
        "call_id": "c1", "_org_id": "o1", "party": "customer", "segment_id": 7, "text": "ok",
        "start_ms": 50, "end_ms": 950, "words": [{"text": "ok", "start_ms": 50}]})
    assert segment.segment_key == "customer:7"
    assert segment.words == (ev.TranscriptWord("ok", 50, 0, 0.0),)
    assert (segment.speaker, segment.text_raw, segment.is_final) == (None, None, True)


def test_malformed_payloads_raise_what_the_crm_writer_drops():
    with pytest.raises(KeyError):
        ev.TranscriptEvent.from_payload({"call_id": "c1", "party": "mixed"})
    with pytest.raises(TypeError):
        ev.PromptEvent.from_payload({"prompt": "not an object"})
    with pytest.raises(TypeError):
        ev.PromptEvent.from_payload({"prompt": {"rule_id": "r", "evidence": "x"}})
    with pytest.raises(ValueError):
        ev.CallDtmfEvent.from_payload({"digit": "1", "at_ms": "soon"})
