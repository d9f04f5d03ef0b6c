"""The demo call's synthetic speech, as the server hears it: tiny.en over telephone audio."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from coaching.call_coach import CoachingProfile
from coaching.rule_set import load_rule_set
from crm_core.demo_org import DEMO_RULES
from media.eval.wer import word_errors
from media.frames import AudioFrame, Party
from media.g711 import ulaw_decode, ulaw_encode
from media.stt import SpeechModelPool, StreamingTranscriber
from voice_server.simulator.demo_call import LINES, demo_conversation, party_text


@pytest.fixture(scope="module")
async def pool():
    pool = SpeechModelPool.from_model("tiny.en")
    yield pool
    await pool.close()


async def _finals(pool, party: Party, pcm: np.ndarray) -> str:
    """The track streamed 20 ms at a time (µ-law round trip, as Twilio carries it), finals only."""
    pcm = ulaw_decode(ulaw_encode(pcm))
    # with the hot words the server gives the demo organisation's calls
    transcriber = StreamingTranscriber(party, pool, hotwords=CoachingProfile.load(DEMO_RULES).hotwords or None)
    texts: list[str] = []

    async def collect():
        async for segment in transcriber:
            if segment.is_final:
                texts.append(segment.text)

    reader = asyncio.create_task(collect())
    for n, i in enumerate(range(0, len(pcm) - 159, 160)):
        transcriber.push(AudioFrame(pcm[i:i + 160].copy(), 8000, party, i // 8))
        if n % 10 == 0:
            await asyncio.sleep(0.02)
    await transcriber.close()
    await reader
    return " ".join(texts)


async def test_the_demo_call_transcribes_with_a_word_error_rate_under_ten_percent(pool):
    call = demo_conversation()
    heard = {"rep": await _finals(pool, Party.REP, call.rep),
             "customer": await _finals(pool, Party.CUSTOMER, call.customer)}
    total = None
    for party, text in heard.items():
        errors = word_errors(party_text(party), text)
        print(f"{party}: WER {errors.wer:.1%} ({errors.errors}/{errors.reference_words}): {text}")
        total = errors if total is None else total + errors
    assert total.wer <= 0.10, heard
    # what the prompts hang on is heard, not just most of the words
    assert "dialpad" in heard["customer"].lower()
    assert "too expensive" in heard["customer"].lower()
    assert "schedule a demo" in heard["rep"].lower()


def test_the_script_holds_a_competitor_an_objection_and_a_next_step():
    rules = load_rule_set(DEMO_RULES)
    said = " ".join(line.text.lower() for line in LINES)
    by_name = {c.name: c for c in rules.keywords}
    for category in ("objection_price", "next_step"):
        assert any(p.text.lower() in said for p in by_name[category].phrases), category
    competitors = [c for c in rules.keywords if c.name.startswith("competitor")]
    assert any(p.text.lower() in said for c in competitors for p in c.phrases)
    # the rep says the call is recorded, so the demo never shows the compliance prompt
    assert any(p.text in said for p in by_name["compliance_disclosure"].phrases)
