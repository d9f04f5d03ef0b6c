"""The live path's stages, each on its own: no speech model, no bus, no database."""

from __future__ import annotations

import asyncio

import numpy as np

from coaching.call_coach import CallCoach, CoachingProfile
from coaching.records import EVENT_TYPES, CoachingPrompt, SegmentInput, as_event
from crm_core.calls import live_events as ev
from media.frames import AudioFrame, Party
from media.transcript import TranscriptSegment, Word
from voice_server.live_stages import (
    Coaching,
    LabelledSegment,
    PiiRedaction,
    Transcription,
    insight_event,
    metrics_event,
    summary_event,
)

RULES = {"keywords": {"competitor": {"phrases": [{"phrase": "conference"}]}}}


def _segment(words: list[tuple[str, int]], *, party: str = "customer", is_final: bool = True,
             segment_id: str = "3") -> TranscriptSegment:
    timed = tuple(Word(w, at, at + 280, 0.91234) for w, at in words)
    return TranscriptSegment(segment_id=segment_id, party=party,
                             text=" ".join(w for w, _ in words), start_ms=timed[0].start_ms,
                             end_ms=timed[-1].end_ms, words=timed, is_final=is_final,
                             revision=1, stable_words=len(words))


CARD = [("my", 1000), ("card", 1300), ("is", 1600), ("4111", 2000), ("1111", 2500),
        ("1111", 3000), ("1111", 3500)]
COMPETITOR = [("we", 4000), ("already", 4300), ("use", 4700), ("conference", 5000),
              ("today", 5600)]


def test_redaction_masks_the_line_and_reports_a_finals_spans_to_its_listeners():
    stage = PiiRedaction(keep_raw_text=True)
    heard: list = []
    stage.listeners.append(heard.append)
    redacted = stage.redact(LabelledSegment(_segment(CARD), "customer"))
    event = redacted.event
    assert event.event_type == ev.TRANSCRIPT_FINAL
    assert "4111" not in event.text and event.redacted == ("card_number",)
    assert [w.text for w in event.words[3:]] == ["[redacted]"] * 4
    assert event.words[0] == ev.TranscriptWord("my", 1000, 1280, 0.912)
    assert event.text_raw == "my card is 4111 1111 1111 1111"
    assert redacted.text_input.text == event.text_raw  # coaching reads the words as spoken
    stage.report(redacted)
    assert [s.kind for s in heard[0]] == ["card_number"]


def test_redaction_keeps_raw_text_only_on_finals_and_only_where_the_org_keeps_it():
    partial = PiiRedaction(keep_raw_text=True).redact(
        LabelledSegment(_segment(CARD, is_final=False), "customer"))
    assert partial.event.event_type == ev.TRANSCRIPT_PARTIAL and partial.event.text_raw is None
    final = PiiRedaction().redact(LabelledSegment(_segment(CARD), "customer"))
    assert final.event.text_raw is None and "text_raw" not in final.event.to_payload()


async def test_coaching_prompts_on_the_triggering_line_and_skips_unknown_voices():
    redaction = PiiRedaction()
    coaching = Coaching(CoachingProfile.load(RULES))
    events = await coaching.feed(redaction.redact(LabelledSegment(_segment(COMPETITOR), "customer")))
    prompts = [e for e in events if isinstance(e, ev.PromptEvent)]
    assert prompts and prompts[0].segment_key == "customer:3"
    assert prompts[0].id == f"{prompts[0].rule_id}@{prompts[0].at_ms}"
    mixed = redaction.redact(LabelledSegment(_segment(COMPETITOR, party="mixed"), "speaker_1"))
    assert mixed.event.speaker == "speaker_1" and mixed.text_input.party == "customer"
    assert await Coaching(CoachingProfile.load(RULES)).feed(mixed) == []
    summary = coaching.finish(6000, abnormal=True)
    assert summary.abnormal and summary.competitors == ("conference",)


def test_the_events_carry_coachings_own_json_form_of_its_records():
    """The live payloads agree with coaching.as_event, names and fields, for every insight."""
    coach = CallCoach(CoachingProfile.load(RULES))
    seen = set()
    for i, (party, words) in enumerate([("customer", COMPETITOR), ("rep", CARD)]):
        segment = SegmentInput.from_transcript(_segment(words, party=party, segment_id=str(i)))
        for record in coach.feed(segment):
            event = insight_event(record, "customer:0")
            name, body = as_event(record)
            assert event.event_type == name == EVENT_TYPES[type(record)]
            if isinstance(record, CoachingPrompt):
                assert event.to_payload()["prompt"] == {**body, "id": event.id,
                                                        "segment_key": "customer:0"}
            elif name != ev.INSIGHT_METRICS:  # metrics are shaped per party for the feed
                assert event.to_payload() == body
            seen.add(name)
    assert {ev.INSIGHT_KEYWORD, ev.INSIGHT_SENTIMENT, ev.COACHING_PROMPT} <= seen
    summary = coach.finish(9000)
    name, body = as_event(summary)
    assert name == ev.INSIGHT_SUMMARY
    assert summary_event(summary, abnormal=False).to_payload() == {
        **body, "metrics": metrics_event(summary.metrics).to_payload(), "abnormal": False}


async def test_the_live_metrics_and_summary_keep_each_partys_longest_monologue():
    """The rep's longest monologue survives the customer's longer turn, live and in the summary."""
    redaction, coaching = PiiRedaction(), Coaching(CoachingProfile.load(RULES))
    rep_line = "thanks for taking my call today"
    customer_line = "well we have been looking at a few tools for our team this quarter"
    rep = [(w, 1000 + 500 * i) for i, w in enumerate(rep_line.split(" "))]
    customer = [(w, 6000 + 700 * i) for i, w in enumerate(customer_line.split(" "))]
    events = []
    for party, words, key in (("rep", rep, "1"), ("customer", customer, "2")):
        events += await coaching.feed(redaction.redact(
            LabelledSegment(_segment(words, party=party, segment_id=key), party)))
    live = [e for e in events if isinstance(e, ev.MetricsEvent)][-1]
    expected = ev.PartyPair(rep[-1][1] + 280 - 1000, customer[-1][1] + 280 - 6000)
    assert live.longest_monologue_ms == expected
    assert live.to_payload()["longest_monologue_ms"] == {"rep": expected.rep,
                                                         "customer": expected.customer}
    assert coaching.finish(20_000, abnormal=False).metrics.longest_monologue_ms == expected


class _FakeTranscriber:
    """Stands for a StreamingTranscriber: every pushed frame becomes one final segment."""

    def __init__(self, party: str, stream_id: str) -> None:
        self.party, self.stream_id = party, stream_id
        self._out: asyncio.Queue = asyncio.Queue()
        self.speech_in_progress = False

    def push(self, frame: AudioFrame) -> None:
        words = [("bad" if frame.timestamp_ms == 20 else "hello", frame.timestamp_ms)]
        self._out.put_nowait(_segment(words, party=self.party,
                                      segment_id=str(frame.timestamp_ms)))

    async def close(self) -> None:
        self._out.put_nowait(None)

    def __aiter__(self):
        return self

    async def __anext__(self) -> TranscriptSegment:
        segment = await self._out.get()
        if segment is None:
            raise StopAsyncIteration
        return segment


async def test_transcription_reads_each_partys_segments_into_its_sink():
    made: list[_FakeTranscriber] = []
    seen: list[tuple[str, str, bool]] = []
    stage = None

    def new_transcriber(party: str, stream_id: str) -> _FakeTranscriber:
        made.append(_FakeTranscriber(party, stream_id))
        return made[-1]

    async def sink(segment: TranscriptSegment) -> None:
        seen.append((segment.party, segment.text, stage.speech_active))
        if segment.text == "bad":
            raise ValueError("a segment the next stage cannot take")

    stage = Transcription("call-1", new_transcriber, sink)
    for party, at in [("rep", 0), ("customer", 0), ("rep", 20), ("rep", 40)]:
        stage.push(AudioFrame(np.zeros(160, np.int16), 8000, Party(party), at))
    await stage.close()
    assert [(t.party, t.stream_id) for t in made] == [("rep", "call-1:rep"),
                                                       ("customer", "call-1:customer")]
    # a segment the sink fails on is logged; the party's later segments still flow
    assert [s for s in seen if s[0] == "rep"] == [("rep", "hello", True), ("rep", "bad", True),
                                                   ("rep", "hello", True)]
    assert ("customer", "hello", True) in seen
    assert stage.last_ms == 60 and not stage.speech_active


async def test_a_finals_sentiment_is_scored_off_the_event_loop():
    """The model (MiniLM: milliseconds) runs in the sentiment worker thread, once per final."""
    import threading

    from coaching.sentiment import VaderSentiment

    class WhereScored(VaderSentiment):
        def __init__(self) -> None:
            super().__init__()
            self.threads: list[str] = []

        def score(self, text: str) -> float:
            self.threads.append(threading.current_thread().name)
            return super().score(text)

    model = WhereScored()
    redaction, coaching = PiiRedaction(), Coaching(CoachingProfile.load(RULES, model))
    partial = _segment(COMPETITOR, is_final=False)
    assert all(not isinstance(e, ev.SentimentEvent)
               for e in await coaching.feed(redaction.redact(LabelledSegment(partial, "customer"))))
    events = await coaching.feed(redaction.redact(LabelledSegment(_segment(COMPETITOR), "customer")))
    sentiment = [e for e in events if isinstance(e, ev.SentimentEvent)]
    assert len(sentiment) == 1 and len(model.threads) == 1
    assert model.threads[0].startswith("sentiment") and model.threads[0] != "MainThread"
