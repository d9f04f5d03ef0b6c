"""Transcript text as people write it, from the word pieces the real decoder produces."""

import asyncio

import numpy as np
import pytest

from media.frames import AudioFrame, Party
from media.stt import SpeechModelPool, StreamingTranscriber
from media.stt.decoder import written_words
from media.text_normalize import normalize_words, written_form
from media.transcript import Word
from tests.media.speech_corpus import requires_corpus
from tests.media.stt.word_pieces import EMAIL_CLIP, clip_audio, load

DECODED = {entry["clip"]: entry for entry in load()}


def _pieces(clip):
    return [
        {"word": w, "start": s, "end": e, "probability": p}
        for w, s, e, p in DECODED[clip]["pieces"]
    ]


def _words(clip):
    return [
        Word(w["word"], round(w["start"] * 1000), round(w["end"] * 1000), w["probability"])
        for w in written_words(_pieces(clip))
    ]


@pytest.mark.parametrize("clip", sorted(DECODED))
def test_word_pieces_join_into_the_decoded_text(clip):
    words = written_words(_pieces(clip))
    assert " ".join(w["word"].strip() for w in words) == DECODED[clip]["text"].strip()
    for word in words:
        assert word["word"].startswith(" ") or word is words[0]
        assert word["start"] <= word["end"]


def test_a_word_split_at_punctuation_is_one_word_spanning_its_pieces():
    words = {w["word"].strip(): w for w in written_words(_pieces("demo-abouttotry"))}
    inter = words[
        "Inter-Astrisk"
    ]  # pieces " Inter" 1.76-1.98 s (p 0.345), "-Astrisk" 1.98-2.64 s (p 0.329)
    assert (inter["start"], inter["end"], inter["probability"]) == (1.76, 2.64, 0.329)
    assert "www.asterisk.org." in {
        w["word"].strip() for w in written_words(_pieces("demo-moreinfo"))
    }


@pytest.mark.parametrize(
    ("clip", "expected"),
    [
        ("demo-abouttotry", "an Inter-Astrisk Exchange"),
        ("demo-moreinfo", "visit www.asterisk.org."),
        ("demo-instruct@0@28", "an inter-asterisk exchange"),  # decoded "inter- asterisk"
        ("demo-instruct@28@56", "extension 1234 and password 4242."),
        ("digits/5+digits/hundred+digits/dollars", "$500."),  # decoded "$500 dollars."
        ("digits/4+digits/1+digits/1+digits/1", "4111."),  # decoded "Four, one, one, one."
        (EMAIL_CLIP, "joe@xyz.com"),  # decoded "J O E at X Y Z dot C O M"
    ],
)
def test_decoded_speech_reads_as_written(clip, expected):
    words = _words(clip)
    written = written_form(words)
    assert expected in " ".join(w.text for w in written)
    # merged words keep the call-clock span of what they were made of
    assert written[0].start_ms == words[0].start_ms and written[-1].end_ms == words[-1].end_ms
    assert [w.start_ms for w in written] == sorted(w.start_ms for w in written)


@pytest.mark.parametrize(
    ("said", "written"),
    [
        ("ill -disposed and cold -hearted", "ill-disposed and cold-hearted"),
        ("Mr .G. said it's 5 dollars, fine", "Mr.G. said it's $5, fine"),
        ("mail john at gmail dot com today", "mail john@gmail.com today"),
        # not e-mail addresses, not numbers: left as said
        ("visit us at example dot com", "visit us at example dot com"),
        ("meet at noon dot", "meet at noon dot"),
        ("press one. Two, three.", "press one. Two, three."),
        ("one or two", "one or two"),
        ("Oh, one, two", "Oh, one, two"),
        ("well - I think", "well - I think"),
    ],
)
def test_written_form_rules(said, written):
    words = [Word(t, 10 * i, 10 * i + 5, 0.9) for i, t in enumerate(said.split())]
    assert " ".join(w.text for w in written_form(words)) == written


def test_written_amounts_compare_equal_to_spoken_ones():
    assert normalize_words("It costs $500.") == normalize_words("it costs 500 dollars")


@requires_corpus
async def test_streamed_finals_read_as_written():
    """The live path end to end: real speech -> VAD -> tiny.en -> finals with written text."""
    pcm = np.concatenate(
        [
            clip_audio("digits/5+digits/hundred+digits/dollars"),
            np.zeros(8000, np.int16),
            clip_audio(EMAIL_CLIP),
            np.zeros(8000, np.int16),
        ]
    )
    pool = SpeechModelPool.from_model("tiny.en")
    transcriber = StreamingTranscriber(Party.CUSTOMER, pool)
    finals = []

    async def collect():
        async for segment in transcriber:
            if segment.is_final:
                finals.append(segment)

    reader = asyncio.create_task(collect())
    try:
        for n, i in enumerate(range(0, len(pcm), 160)):
            transcriber.push(AudioFrame(pcm[i : i + 160], 8000, Party.CUSTOMER, 5000 + i // 8))
            if n % 25 == 0:
                await asyncio.sleep(0.01)
        await transcriber.close()
        await reader
    finally:
        await pool.close()
    texts = [f.text for f in finals]
    assert "$500." in texts[0] and "dollars" not in texts[0].lower()
    assert "joe@xyz.com" in texts[-1]
    for final in finals:
        assert final.text == " ".join(w.text for w in final.words)
